// A plain vec4 copy: the memory-bandwidth ceiling that `splatforge gpu` reports and the
// benchmarks compare their floors against. Each thread moves 16 bytes per loop trip, and the
// grid strides over the buffer so a modest dispatch covers any size.
#include "common.wgsl"

@group(0) @binding(0) var<storage, read> source: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> destination: array<vec4<f32>>;

@compute @workgroup_size(256)
fn copy_vec4(
    @builtin(workgroup_id) workgroup_id: vec3<u32>,
    @builtin(num_workgroups) num_workgroups: vec3<u32>,
    @builtin(local_invocation_index) local_index: u32,
) {
    let first = linear_invocation_id(workgroup_id, num_workgroups, local_index, 256u);
    let stride = num_workgroups.x * num_workgroups.y * 256u;
    let count = arrayLength(&destination);
    for (var i = first; i < count; i += stride) {
        destination[i] = source[i];
    }
}
