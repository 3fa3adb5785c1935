// Helpers shared by every kernel. Include with `#include "common.wgsl"`.

// The linear index of a workgroup in a 1-D dispatch that the host may have folded into two
// dimensions (see `dispatch_size_1d` in src/gpu/buffers.rs).
fn linear_workgroup_id(workgroup_id: vec3<u32>, num_workgroups: vec3<u32>) -> u32 {
    return workgroup_id.x + workgroup_id.y * num_workgroups.x;
}

// The linear invocation index in such a dispatch, for workgroups of `size` threads.
fn linear_invocation_id(
    workgroup_id: vec3<u32>,
    num_workgroups: vec3<u32>,
    local_index: u32,
    size: u32,
) -> u32 {
    return linear_workgroup_id(workgroup_id, num_workgroups) * size + local_index;
}
