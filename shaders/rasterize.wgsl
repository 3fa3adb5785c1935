// Tile rasterization of the depth-sorted splats, forward and backward (ARCHITECTURE.md,
// "Rasterization" and "The rasterizer (backward)").
//
// Key choices:
// - Pixels: a tile's 256 pixels are numbered in Morton order (`morton_pixel`), so that a
//   subgroup's pixels form a compact block of the tile (8 x 4 for 32 lanes), which fewer splats
//   reach than rows of as many pixels.
// - Forward: one workgroup of 256 threads per 16 x 16 tile, one thread per pixel (declared 1-D
//   because subgroup builtins need 1-D workgroups). A thread stops when its transmittance would
//   fall below 1e-4. Per pixel it writes the colour (planar CHW), the final transmittance, and
//   the number of tile-list entries up to its last composited splat ("last contributor
//   count"). With subgroups each subgroup walks the list on its own, skipping by a ballot the
//   splats that miss its block (binning's strip test), like the backward below; it stops when
//   all its pixels have. Without subgroups the tile's list is consumed front to back
//   in batches of 256: each thread gathers one splat (48 bytes) into workgroup memory, then
//   every thread reads the whole batch from there; threads outside the image (images need not
//   be multiples of 16) still help load batches, and the tile stops loading batches once every
//   thread has stopped (a workgroup counter read with workgroupUniformLoad).
// - Backward, skipping by subgroup (SUBGROUP_SKIPS: with subgroups, not in DETERMINISTIC mode):
//   128 threads per tile, two pixels per thread (the per-splat shuffles, reductions and atomics
//   of a subgroup are shared by twice the pixels: 0.766 -> 0.670 ms, BENCHMARKS.md). Each
//   subgroup (a block of the tile) walks its piece on its own, without workgroup barriers:
//   it loads 32 splats at a time (one per lane), ballots for those that reach its block of the
//   tile (binning's exact strip test on its rows and columns, splat_reach.wgsl) and
//   lie in front of its pixels' last contributors, and walks only those, in the same order,
//   passing each splat to every lane by shuffles. Every pixel still runs its own tests, so the
//   gradients are the same; the iterations where every lane would have failed them are gone,
//   and no subgroup waits for another. Otherwise (DETERMINISTIC, or no subgroups) the
//   workgroup of 256 threads loads batches of 256 splats into workgroup memory and every
//   thread walks them.
// - Pieces: the backward pass does not walk a whole tile list in one workgroup (64 tiles of a
//   128 x 128 image would leave most of the GPU idle, and one long list would hold up the end of
//   the pass). Tile lists are cut at the list positions that are multiples of
//   `render.chunk_size`; the forward saves, at each cut inside a tile, every still-active
//   pixel's transmittance and the colour composited so far ("checkpoints", 16 bytes per pixel
//   and cut), and the backward runs one workgroup per piece, starting from the checkpoint at
//   the piece's end. Work item `w < tiles` is the first piece of tile `w`; work item
//   `tiles + k - 1` is the piece that starts at position `k * chunk_size`, if a tile's list
//   continues there.
// - Backward, per piece: back to front from the piece's end (or the tile's largest
//   last-contributor count, if smaller). T in front of each splat is recovered by division by
//   (1 - alpha) (as inria and gsplat do), restarting from the saved T at every cut.
// - Per-splat gradients (mean 2, conic 3, opacity 1, colour 3) are summed over the subgroup
//   first. With subgroups of at least 8 lanes (WIDE_SUBGROUPS) a reduce-scatter spreads the
//   nine sums over the lanes in 11 shuffles (plus one per further doubling of the subgroup past
//   16), instead of nine full reductions (45 shuffles for 32 lanes), and the lanes then issue
//   their atomics at once. Narrower subgroups use one subgroupAdd per value. Without subgroups,
//   threads accumulate into per-batch workgroup slots (compare-and-swap on u32) flushed after
//   each batch. Global accumulation: atomicAdd on atomic<f32> with FLOAT_ATOMICS, a
//   compare-and-swap loop on atomic<u32> otherwise.
// - DETERMINISTIC: no float atomics anywhere. Each (tile, splat) pair's gradient is summed in a
//   fixed order (per subgroup, then over the subgroups in index order; without wide subgroups,
//   a two-level tree in workgroup memory) and written to the intersection's own slot of the
//   emission order (`intersection_slots`, which the tile sort carries instead of Gaussian ids);
//   bin.wgsl's `sum_intersection_gradients` then adds each Gaussian's slots in list order. Runs
//   with the same inputs give bit-identical gradients.
// - Only the memory traffic the maths needs: per pixel, the forward reads nothing but the batch
//   and writes 5 values (plus 4 per cut); the backward reads d_image (3), final T and the count
//   (plus, at a cut, the checkpoint and the rendered colour).

#include "common.wgsl"
#include "raster_types.wgsl"
#include "splat_reach.wgsl"

const BATCH_SIZE: u32 = 256u;
// Threads per workgroup (one per pixel of a tile).
const TILE_THREADS: u32 = TILE_SIZE * TILE_SIZE;
// Floats of dL/d(2D quantities) per Gaussian: mean (2), conic (3), opacity (1), colour (3).
const GRAD_2D_STRIDE: u32 = 9u;

@group(0) @binding(0) var<uniform> render: RenderUniforms;
@group(0) @binding(1) var<storage, read> ranges: array<vec2<u32>>;
// Gaussian ids of the sorted intersection list (DETERMINISTIC: of the emission order).
@group(0) @binding(2) var<storage, read> intersection_gaussians: array<u32>;
@group(0) @binding(3) var<storage, read> splats: array<Splat>;
// Forward outputs (the backward reads them all).
@group(0) @binding(4) var<storage, read_write> image: array<f32>;
@group(0) @binding(5) var<storage, read_write> final_transmittance: array<f32>;
@group(0) @binding(6) var<storage, read_write> last_counts: array<u32>;
// Backward input, planar CHW like the image.
@group(0) @binding(7) var<storage, read> d_image: array<f32>;
// Tile id per entry of the sorted list (the sort's keys): the backward finds its piece's tile.
@group(0) @binding(9) var<storage, read> intersection_tiles: array<u32>;
// Per cut k (list position k * chunk_size) and pixel of the tile: (T, colour so far) in front
// of the entry at the cut.
@group(0) @binding(10) var<storage, read_write> checkpoints: array<vec4<f32>>;

#ifdef DETERMINISTIC
// The emission slot of each entry of the sorted list (the tile sort's values).
@group(0) @binding(11) var<storage, read> intersection_slots: array<u32>;
// Backward output: GRAD_2D_STRIDE floats per emission slot.
@group(0) @binding(12) var<storage, read_write> intersection_grads: array<f32>;

fn listed_gaussian(position: u32) -> u32 {
    return intersection_gaussians[intersection_slots[position]];
}
#else
fn listed_gaussian(position: u32) -> u32 {
    return intersection_gaussians[position];
}

// Backward output, GRAD_2D_STRIDE floats per Gaussian (zeroed by `clear_grad_2d` first).
#ifdef FLOAT_ATOMICS
@group(0) @binding(8) var<storage, read_write> grad_2d: array<atomic<f32>>;

fn add_to_grad_2d(index: u32, value: f32) {
    atomicAdd(&grad_2d[index], value);
}
#else
@group(0) @binding(8) var<storage, read_write> grad_2d: array<atomic<u32>>;

fn add_to_grad_2d(index: u32, value: f32) {
    var old = atomicLoad(&grad_2d[index]);
    loop {
        let swapped = atomicCompareExchangeWeak(&grad_2d[index], old, bitcast<u32>(bitcast<f32>(old) + value));
        if swapped.exchanged {
            break;
        }
        old = swapped.old_value;
    }
}
#endif

// Zeroes grad_2d before the backward adds to it: a kernel, because a clear command would end
// the step's compute pass (gpu::Recorder).
@compute @workgroup_size(256)
fn clear_grad_2d(
    @builtin(workgroup_id) workgroup_id: vec3<u32>,
    @builtin(num_workgroups) num_workgroups: vec3<u32>,
    @builtin(local_invocation_index) local_index: u32,
) {
    let i = linear_invocation_id(workgroup_id, num_workgroups, local_index, 256u);
    if i < render.num_gaussians * GRAD_2D_STRIDE {
#ifdef FLOAT_ATOMICS
        atomicStore(&grad_2d[i], 0.0);
#else
        atomicStore(&grad_2d[i], 0u);
#endif
    }
}
#endif

var<workgroup> batch_splats: array<Splat, BATCH_SIZE>;
// `visible_rows` of each batch splat.
var<workgroup> batch_rows: array<vec2<f32>, BATCH_SIZE>;
var<workgroup> tile_range: vec2<u32>;
// Forward: threads that have finished. Backward: largest last-contributor count of the tile.
var<workgroup> tile_counter: atomic<u32>;

struct PixelSetup {
    pixel: vec2<u32>,
    inside: bool,
    // Index into a plane of the image (valid when inside).
    index: u32,
    centre: vec2<f32>,
}

// The pixel of a tile at `index` in Morton (Z) order: bits 0, 2, 4, 6 of the index are x, bits
// 1, 3, 5, 7 are y. Any 2^k consecutive indices from a multiple of 2^k form a square or a 2:1
// block, so a subgroup covers a compact block of the tile (32 lanes: 8 x 4 pixels), which
// fewer splats reach than whole rows of as many pixels: on a trained 30k bench_tabletop cloud
// the forward takes 0.476-0.481 ms instead of 0.540, the backward 0.831-0.834 instead of
// 0.896 (BENCHMARKS.md).
fn morton_pixel(index: u32) -> vec2<u32> {
    let x = (index & 1u) | ((index >> 1u) & 2u) | ((index >> 2u) & 4u) | ((index >> 3u) & 8u);
    let y = ((index >> 1u) & 1u) | ((index >> 2u) & 2u) | ((index >> 3u) & 4u) | ((index >> 4u) & 8u);
    return vec2<u32>(x, y);
}

fn pixel_setup(tile: vec2<u32>, local_index: u32) -> PixelSetup {
    let pixel = tile * TILE_SIZE + morton_pixel(local_index);
    let inside = pixel.x < render.image_size.x && pixel.y < render.image_size.y;
    return PixelSetup(pixel, inside, pixel.y * render.image_size.x + pixel.x, vec2<f32>(pixel) + 0.5);
}

// alpha of a splat at a pixel centre, with the falloff exp(power) and whether the 0.99 cap was
// active. `alpha` is 0 when the splat is skipped there (power > 0, NaN, or alpha < 1/255).
struct Footprint {
    alpha: f32,
    falloff: f32,
    capped: bool,
    // mean - pixel centre.
    d: vec2<f32>,
}

fn footprint(s: Splat, centre: vec2<f32>) -> Footprint {
    var out: Footprint;
    out.d = s.mean - centre;
    let power = -0.5 * (s.conic.x * out.d.x * out.d.x + s.conic.z * out.d.y * out.d.y)
        - s.conic.y * out.d.x * out.d.y;
    out.alpha = 0.0;
    out.falloff = 0.0;
    out.capped = false;
    // `!(power <= 0)` also skips NaN, which far-away pixels of huge splats could produce.
    if !(power <= 0.0) {
        return out;
    }
    out.falloff = exp(power);
    let unclamped = s.opacity * out.falloff;
    out.capped = unclamped > MAX_ALPHA;
    out.alpha = min(MAX_ALPHA, unclamped);
    if out.alpha < MIN_ALPHA {
        out.alpha = 0.0;
    }
    return out;
}

// The forward's outputs for pixel `index` of the image: the colour over the background (planar
// CHW), the final transmittance and the last-contributor count.
fn write_pixel(index: u32, colour: vec3<f32>, transmittance: f32, last_count: u32) {
    let plane = render.image_size.x * render.image_size.y;
    let out = colour + transmittance * render.background.rgb;
    image[index] = out.r;
    image[plane + index] = out.g;
    image[2u * plane + index] = out.b;
    final_transmittance[index] = transmittance;
    last_counts[index] = last_count;
}

// The pixel-centre rows [x, y] outside which a splat's alpha is below MIN_ALPHA: there
// d^T Q d > r2 = 2 ln(opacity / MIN_ALPHA) (Q the conic), and over that ellipse |d.y| is at
// most sqrt(r2 * Q^-1_yy) = sqrt(r2 * Q_xx / det Q). Kernels compute it once per splat and
// batch; a pixel outside it skips the splat without evaluating the Gaussian, which `footprint`
// would have zeroed anyway: the result is the same (the walks without subgroups; rows only,
// columns measured slower when subgroups covered whole rows, BENCHMARKS.md). Margins (0.1%
// and 0.01 px) cover the footprint's rounding; needle-like splats (det Q < 1% of Q_xx Q_yy,
// where det Q loses precision) and degenerate ones get every row.
fn visible_rows(s: Splat) -> vec2<f32> {
    let diagonal = s.conic.x * s.conic.z;
    let det = diagonal - s.conic.y * s.conic.y;
    let r2 = 2.0 * log(s.opacity / MIN_ALPHA);
    if !(det > 0.01 * diagonal) || !(r2 >= 0.0) || !is_finite(diagonal) || !is_finite(r2) {
        return vec2<f32>(-3.0e38, 3.0e38);
    }
    let extent = sqrt(r2 * s.conic.x / det) * 1.001 + 0.01;
    return vec2<f32>(s.mean.y - extent, s.mean.y + extent);
}

fn outside_rows(rows: vec2<f32>, centre: vec2<f32>) -> bool {
    return centre.y < rows.x || centre.y > rows.y;
}

// ---------------------------------------------------------------------------------------------
// Pieces

// One piece of one tile's list: entries [start, end) of the sorted list.
struct Piece {
    tile: u32,
    tile_start: u32,
    start: u32,
    end: u32,
}

var<workgroup> shared_piece: Piece;

// The piece of work item `item` (see "Pieces" above); `end <= start` when there is none.
fn find_piece(item: u32) -> Piece {
    var piece = Piece(0u, 0u, 0u, 0u);
    let tiles = render.tile_grid.x * render.tile_grid.y;
    let chunk = render.chunk_size;
    if item < tiles {
        let range = ranges[item];
        if range.x < range.y {
            piece = Piece(item, range.x, range.x, min(range.y, (range.x / chunk + 1u) * chunk));
        }
        return piece;
    }
    let cut_index = item - tiles + 1u;
    let entries = arrayLength(&intersection_tiles);
    if cut_index >= (entries + chunk - 1u) / chunk {
        return piece;
    }
    let cut = cut_index * chunk;
    let tile = intersection_tiles[cut];
    if tile >= tiles {
        return piece;
    }
    // Entries past the listed count hold stale keys; a stale key cannot name a tile whose
    // current range contains the position, so this test needs no count.
    let range = ranges[tile];
    if range.x < cut && cut < range.y {
        piece = Piece(tile, range.x, cut, min(range.y, cut + chunk));
    }
    return piece;
}

// ---------------------------------------------------------------------------------------------
// Subgroup walks (both passes, with subgroups): each lane loads one entry of a window, a ballot
// picks the entries whose splats reach the subgroup's block, and each picked splat reaches
// every lane by `shuffled_splat`.

#ifdef SUBGROUPS
// The value of a lane with no entry in the window.
fn no_splat() -> Splat {
    return Splat(vec2<f32>(0.0), vec3<f32>(0.0), 0.0, vec3<f32>(0.0));
}

// Lane `k`'s splat, on every lane (subgroup-uniform control flow).
fn shuffled_splat(s: Splat, k: u32) -> Splat {
    return Splat(
        subgroupShuffle(s.mean, k),
        subgroupShuffle(s.conic, k),
        subgroupShuffle(s.opacity, k),
        subgroupShuffle(s.color, k),
    );
}

#endif

// ---------------------------------------------------------------------------------------------
// Forward

#ifdef SUBGROUPS
// Forward with subgroups: each subgroup (a block of the tile) walks the list on its own, with
// no workgroup barrier, one window of S entries (S lanes) at a time: each lane loads one
// entry's splat, a ballot picks those that reach alpha >= 1/255 somewhere in the subgroup's
// block (binning's strip test on its rows and columns, splat_reach.wgsl), and only
// those reach the lanes, by shuffles, in list order. A pixel composites exactly what the batch
// walk below would (the skipped splats have alpha < 1/255 at all its pixels), so the images are
// the same; on a trained 30k bench_tabletop cloud the forward takes 0.552 ms instead of 0.616
// (BENCHMARKS.md). The subgroup stops once all its pixels have.
@compute @workgroup_size(256)
fn rasterize_forward(
    @builtin(workgroup_id) workgroup_id: vec3<u32>,
    @builtin(local_invocation_index) local_index: u32,
    @builtin(subgroup_invocation_id) subgroup_lane: u32,
    @builtin(subgroup_size) subgroup_size: u32,
) {
    let px = pixel_setup(workgroup_id.xy, local_index);
    let range = ranges[workgroup_id.y * render.tile_grid.x + workgroup_id.x];
    var done = !px.inside;
    var transmittance = 1.0;
    var colour = vec3<f32>(0.0);
    var last_count = 0u;
    let chunk = render.chunk_size;
    let rows = vec2<f32>(subgroupMin(px.centre.y), subgroupMax(px.centre.y));
    let columns = vec2<f32>(subgroupMin(px.centre.x), subgroupMax(px.centre.x));
    // Windows end at multiples of the subgroup size, so every cut (a multiple of chunk, itself
    // a multiple of the subgroup size) starts a window.
    var window = range.x;
    loop {
        if window >= range.y || subgroupAll(done) {
            break;
        }
        let window_end = min(range.y, (window / subgroup_size + 1u) * subgroup_size);
        if window > range.x && window % chunk == 0u && !done {
            checkpoints[(window / chunk) * TILE_THREADS + local_index] = vec4<f32>(transmittance, colour);
        }
        var s = no_splat();
        var seen = false;
        if window + subgroup_lane < window_end {
            s = splats[listed_gaussian(window + subgroup_lane)];
            seen = reaches_block(s, rows, columns);
        }
        let ballot = subgroupBallot(seen);
        for (var word = 0u; word < 4u; word++) {
            var bits = ballot[word];
            while bits != 0u {
                let k = 32u * word + firstTrailingBit(bits);
                bits &= bits - 1u;
                let splat = shuffled_splat(s, k);
                if !done {
                    let fp = footprint(splat, px.centre);
                    if fp.alpha > 0.0 {
                        let next_transmittance = transmittance * (1.0 - fp.alpha);
                        if next_transmittance < MIN_TRANSMITTANCE {
                            done = true;
                        } else {
                            colour += splat.color * (fp.alpha * transmittance);
                            transmittance = next_transmittance;
                            last_count = window + k + 1u - range.x;
                        }
                    }
                }
            }
        }
        window = window_end;
    }
    if px.inside {
        write_pixel(px.index, colour, transmittance, last_count);
    }
}
#else
// Forward without subgroups: batches of splats in workgroup memory, walked by every thread.
@compute @workgroup_size(256)
fn rasterize_forward(
    @builtin(workgroup_id) workgroup_id: vec3<u32>,
    @builtin(local_invocation_index) local_index: u32,
) {
    let px = pixel_setup(workgroup_id.xy, local_index);
    if local_index == 0u {
        tile_range = ranges[workgroup_id.y * render.tile_grid.x + workgroup_id.x];
        atomicStore(&tile_counter, 0u);
    }
    let range = workgroupUniformLoad(&tile_range);
    var done = !px.inside;
    if done {
        atomicAdd(&tile_counter, 1u);
    }

    var transmittance = 1.0;
    var colour = vec3<f32>(0.0);
    var last_count = 0u;
    let chunk = render.chunk_size;
    let batch_count = (range.y - range.x + BATCH_SIZE - 1u) / BATCH_SIZE;
    for (var batch = 0u; batch < batch_count; batch++) {
        // The uniform load is also a barrier: every thread is done with the previous batch.
        if workgroupUniformLoad(&tile_counter) == TILE_THREADS {
            break;
        }
        let first = range.x + batch * BATCH_SIZE;
        let in_batch = min(BATCH_SIZE, range.y - first);
        if local_index < in_batch {
            let s = splats[listed_gaussian(first + local_index)];
            batch_splats[local_index] = s;
            batch_rows[local_index] = visible_rows(s);
        }
        workgroupBarrier();
        if !done {
            for (var k = 0u; k < in_batch; k++) {
                // A cut (chunk is a power of two) inside the tile's list.
                let position = first + k;
                if (position & (chunk - 1u)) == 0u && position > range.x {
                    checkpoints[(position / chunk) * TILE_THREADS + local_index] = vec4<f32>(transmittance, colour);
                }
                if outside_rows(batch_rows[k], px.centre) {
                    continue;
                }
                let s = batch_splats[k];
                let fp = footprint(s, px.centre);
                if fp.alpha == 0.0 {
                    continue;
                }
                let next_transmittance = transmittance * (1.0 - fp.alpha);
                if next_transmittance < MIN_TRANSMITTANCE {
                    done = true;
                    break;
                }
                colour += s.color * (fp.alpha * transmittance);
                transmittance = next_transmittance;
                last_count = batch * BATCH_SIZE + k + 1u;
            }
            if done {
                atomicAdd(&tile_counter, 1u);
            }
        }
    }

    if px.inside {
        write_pixel(px.index, colour, transmittance, last_count);
    }
}

#endif

// ---------------------------------------------------------------------------------------------
// Forward in pieces (few tiles: one workgroup per tile would leave most of the GPU idle)
//
// 1. `rasterize_pieces`, one workgroup per piece: per pixel, the piece's own transmittance
//    product P and colour (as if T were 1 in front of it) and its last composited entry. A
//    pixel stops once P < 1e-4: with any T <= 1 in front, it stops in this piece or earlier.
// 2. `combine_pieces`, one workgroup per tile: per pixel, the pieces in order. While
//    T * P >= 1e-4 every splat of the piece is composited exactly as the one-pass forward
//    would (its partial products only fall to T * P), so C += T * colour, T *= P; the piece
//    where T * P < 1e-4 is walked splat by splat with the one-pass rule. Checkpoints are
//    written at every cut the pixel reaches, as the one-pass forward writes them.
// The result equals the one-pass forward up to the rounding of the products.

// Per work item (tiles + cuts) and pixel: (P, colour) and the last composited entry (+1,
// relative to the tile's list; 0: none).
@group(0) @binding(13) var<storage, read_write> piece_sums: array<vec4<f32>>;
@group(0) @binding(14) var<storage, read_write> piece_last: array<u32>;

@compute @workgroup_size(256)
fn rasterize_pieces(
    @builtin(workgroup_id) workgroup_id: vec3<u32>,
    @builtin(num_workgroups) num_workgroups: vec3<u32>,
    @builtin(local_invocation_index) local_index: u32,
) {
    let item = linear_workgroup_id(workgroup_id, num_workgroups);
    if local_index == 0u {
        shared_piece = find_piece(item);
        atomicStore(&tile_counter, 0u);
    }
    let piece = workgroupUniformLoad(&shared_piece);
    if piece.end <= piece.start {
        return;
    }
    let tile = vec2<u32>(piece.tile % render.tile_grid.x, piece.tile / render.tile_grid.x);
    let px = pixel_setup(tile, local_index);
    var done = !px.inside;
    if done {
        atomicAdd(&tile_counter, 1u);
    }
    var product = 1.0;
    var colour = vec3<f32>(0.0);
    var last = 0u;
    let batch_count = (piece.end - piece.start + BATCH_SIZE - 1u) / BATCH_SIZE;
    for (var batch = 0u; batch < batch_count; batch++) {
        if workgroupUniformLoad(&tile_counter) == TILE_THREADS {
            break;
        }
        let first = piece.start + batch * BATCH_SIZE;
        let in_batch = min(BATCH_SIZE, piece.end - first);
        if local_index < in_batch {
            let s = splats[listed_gaussian(first + local_index)];
            batch_splats[local_index] = s;
            batch_rows[local_index] = visible_rows(s);
        }
        workgroupBarrier();
        if !done {
            for (var k = 0u; k < in_batch; k++) {
                if outside_rows(batch_rows[k], px.centre) {
                    continue;
                }
                let s = batch_splats[k];
                let fp = footprint(s, px.centre);
                if fp.alpha == 0.0 {
                    continue;
                }
                colour += s.color * (fp.alpha * product);
                product *= 1.0 - fp.alpha;
                last = first + k + 1u - piece.tile_start;
                if product < MIN_TRANSMITTANCE {
                    done = true;
                    break;
                }
            }
            if done {
                atomicAdd(&tile_counter, 1u);
            }
        }
    }
    piece_sums[item * TILE_THREADS + local_index] = vec4<f32>(product, colour);
    piece_last[item * TILE_THREADS + local_index] = last;
}

@compute @workgroup_size(256)
fn combine_pieces(
    @builtin(workgroup_id) workgroup_id: vec3<u32>,
    @builtin(local_invocation_index) local_index: u32,
) {
    let px = pixel_setup(workgroup_id.xy, local_index);
    if !px.inside {
        return;
    }
    let tiles = render.tile_grid.x * render.tile_grid.y;
    let tile = workgroup_id.y * render.tile_grid.x + workgroup_id.x;
    let range = ranges[tile];
    let chunk = render.chunk_size;
    var transmittance = 1.0;
    var colour = vec3<f32>(0.0);
    var last_count = 0u;
    var start = range.x;
    var item = tile;
    while start < range.y {
        let end = min(range.y, (start / chunk + 1u) * chunk);
        if start > range.x {
            checkpoints[(start / chunk) * TILE_THREADS + local_index] = vec4<f32>(transmittance, colour);
        }
        let sums = piece_sums[item * TILE_THREADS + local_index];
        if transmittance * sums.x >= MIN_TRANSMITTANCE {
            colour += transmittance * sums.yzw;
            transmittance *= sums.x;
            last_count = max(last_count, piece_last[item * TILE_THREADS + local_index]);
        } else {
            // The pixel stops in this piece: the one-pass rule, splat by splat.
            for (var position = start; position < end; position++) {
                let s = splats[listed_gaussian(position)];
                let fp = footprint(s, px.centre);
                if fp.alpha == 0.0 {
                    continue;
                }
                let next_transmittance = transmittance * (1.0 - fp.alpha);
                if next_transmittance < MIN_TRANSMITTANCE {
                    break;
                }
                colour += s.color * (fp.alpha * transmittance);
                transmittance = next_transmittance;
                last_count = position + 1u - range.x;
            }
            break;
        }
        start = end;
        item = tiles + end / chunk - 1u;
    }
    write_pixel(px.index, colour, transmittance, last_count);
}

// ---------------------------------------------------------------------------------------------
// Backward

// Splats per batch of the backward pass (the host sets it): 256, or in DETERMINISTIC mode,
// which keeps per-subgroup sums of every splat of a batch in workgroup memory, 16 or 32.
override BACKWARD_BATCH: u32 = 256u;

var<workgroup> backward_splats: array<Splat, BACKWARD_BATCH>;
var<workgroup> backward_rows: array<vec2<f32>, BACKWARD_BATCH>;
// Gaussian ids (atomics) or emission slots (DETERMINISTIC) of the batch.
var<workgroup> backward_targets: array<u32, BACKWARD_BATCH>;

// Gradient of one pixel with respect to one splat's 2D quantities.
struct SplatGrad {
    mean: vec2<f32>,
    conic: vec3<f32>,
    opacity: f32,
    colour: vec3<f32>,
}

fn zero_grad() -> SplatGrad {
    return SplatGrad(vec2<f32>(0.0), vec3<f32>(0.0), 0.0, vec3<f32>(0.0));
}

fn grad_value(grad: SplatGrad, index: u32) -> f32 {
    switch index {
        case 0u: { return grad.mean.x; }
        case 1u: { return grad.mean.y; }
        case 2u: { return grad.conic.x; }
        case 3u: { return grad.conic.y; }
        case 4u: { return grad.conic.z; }
        case 5u: { return grad.opacity; }
        case 6u: { return grad.colour.x; }
        case 7u: { return grad.colour.y; }
        default: { return grad.colour.z; }
    }
}

#include "rasterize_gradient_sums.wgsl"

struct BackwardIds {
    local_index: u32,
    lane: u32,
    subgroup: u32,
    subgroup_size: u32,
    subgroup_count: u32,
}

// One pixel of the backward walk: its place, its last-contributor count and dL/d(colour), and
// the walk's state there, set from the piece's end and stepped in front of each splat walked:
// T behind the last splat walked and the colour composited behind it (background included).
struct WalkPixel {
    centre: vec2<f32>,
    last_count: u32,
    d_pixel: vec3<f32>,
    transmittance: f32,
    behind: vec3<f32>,
}

// Pixel `in_tile` (Morton index within the tile) of `piece` at the piece's end. Zero outside
// the image (a count of 0: no splat is walked there).
fn start_walk(piece: Piece, in_tile: u32) -> WalkPixel {
    let tile = vec2<u32>(piece.tile % render.tile_grid.x, piece.tile / render.tile_grid.x);
    let px = pixel_setup(tile, in_tile);
    var out = WalkPixel(px.centre, 0u, vec3<f32>(0.0), 0.0, vec3<f32>(0.0));
    if !px.inside {
        return out;
    }
    let plane = render.image_size.x * render.image_size.y;
    out.last_count = last_counts[px.index];
    out.d_pixel = vec3<f32>(d_image[px.index], d_image[plane + px.index], d_image[2u * plane + px.index]);
    if out.last_count > piece.end - piece.tile_start {
        // The pixel composites past this piece: start from the checkpoint at its end.
        let checkpoint = checkpoints[(piece.end / render.chunk_size) * TILE_THREADS + in_tile];
        out.transmittance = checkpoint.x;
        let rendered = vec3<f32>(image[px.index], image[plane + px.index], image[2u * plane + px.index]);
        out.behind = rendered - checkpoint.yzw;
    } else {
        out.transmittance = final_transmittance[px.index];
        out.behind = render.background.rgb * out.transmittance;
    }
    return out;
}

// One splat's gradient at one pixel, and whether the splat composites there.
struct PixelGrad {
    grad: SplatGrad,
    contributes: bool,
}

// The gradient of splat `s` at `pixel` (alpha 0 there: none), stepping the walk's state in
// front of the splat.
fn pixel_gradient(s: Splat, pixel: ptr<function, WalkPixel>) -> PixelGrad {
    var out = PixelGrad(zero_grad(), false);
    let fp = footprint(s, (*pixel).centre);
    if fp.alpha > 0.0 {
        out.contributes = true;
        let one_minus_alpha = 1.0 - fp.alpha;
        // T in front of this splat.
        let transmittance = (*pixel).transmittance / one_minus_alpha;
        (*pixel).transmittance = transmittance;
        let weight = fp.alpha * transmittance;
        let d_pixel = (*pixel).d_pixel;
        out.grad.colour = d_pixel * weight;
        let d_alpha = dot(d_pixel, s.color * transmittance - (*pixel).behind / one_minus_alpha);
        (*pixel).behind += s.color * weight;
        // At the 0.99 cap alpha is a constant: no opacity or position gradient.
        if !fp.capped {
            out.grad.opacity = d_alpha * fp.falloff;
            let d_power = d_alpha * fp.alpha;
            let d = fp.d;
            out.grad.mean = d_power * vec2<f32>(
                -s.conic.x * d.x - s.conic.y * d.y,
                -s.conic.z * d.y - s.conic.y * d.x,
            );
            out.grad.conic = d_power * vec3<f32>(-0.5 * d.x * d.x, -d.x * d.y, -0.5 * d.y * d.y);
        }
    }
    return out;
}

// Where the backward walk of `piece` ends: the piece's end or, if smaller, the largest
// last-contributor count over the tile (every invocation passes its pixels' largest `count`,
// gathered in `tile_counter`). The walk covers relative positions [piece start, returned end)
// of the tile's list.
fn walk_end(piece: Piece, count: u32) -> u32 {
    atomicMax(&tile_counter, count);
    return min(piece.end - piece.tile_start, workgroupUniformLoad(&tile_counter));
}

// The piece of this workgroup, with `tile_counter` cleared for `walk_end`.
fn start_piece(workgroup_id: vec3<u32>, num_workgroups: vec3<u32>, local_index: u32) -> Piece {
    if local_index == 0u {
        shared_piece = find_piece(linear_workgroup_id(workgroup_id, num_workgroups));
        atomicStore(&tile_counter, 0u);
    }
    return workgroupUniformLoad(&shared_piece);
}

#ifdef SUBGROUP_SKIPS
// Backward with subgroups, not DETERMINISTIC: two pixels per invocation (half the shuffles,
// reductions and atomics per pixel of one per invocation: the per-splat work of a subgroup is
// shared by twice the pixels). An invocation with subgroup lane l of a subgroup of S lanes
// covers the tile's pixels 2S k + l and 2S k + S + l (k = local_index / S): 2S consecutive
// pixels per subgroup, a square block of the tile for S = 32 (8 x 8), else a 2:1 one.
//
// Each subgroup walks its piece on its own, back to front, one window of S entries at a time,
// with no workgroup barrier (one barrier per batch held every subgroup to the slowest: 0.848 ->
// 0.764 ms without, BENCHMARKS.md). Each lane loads one entry's splat; a ballot picks the
// splats that can reach alpha >= 1/255 somewhere in the subgroup's block (its rows and
// columns: `reaches_block`, 0.687 -> 0.655 ms against a test on rows alone), in front of its
// largest last-contributor count, and their values reach every lane by shuffles. Every pixel
// still runs its own last-contributor and alpha tests (the per-pixel row test of the batch walk
// is left out: `footprint` zeroes the same splats), so the gradients are those of the batch
// walk below.
@compute @workgroup_size(128)
fn rasterize_backward(
    @builtin(workgroup_id) workgroup_id: vec3<u32>,
    @builtin(num_workgroups) num_workgroups: vec3<u32>,
    @builtin(local_invocation_index) local_index: u32,
    @builtin(subgroup_invocation_id) subgroup_lane: u32,
    @builtin(subgroup_size) subgroup_size: u32,
    @builtin(subgroup_id) subgroup_id: u32,
    @builtin(num_subgroups) subgroup_count: u32,
) {
    let ids = BackwardIds(local_index, subgroup_lane, subgroup_id, subgroup_size, subgroup_count);
    let piece = start_piece(workgroup_id, num_workgroups, local_index);
    if piece.end <= piece.start {
        return;
    }
    // A bijection of the 128 invocations onto the 256 pixels for any S dividing 128.
    let first = (local_index / subgroup_size) * 2u * subgroup_size + local_index % subgroup_size;
    var a = start_walk(piece, first);
    var b = start_walk(piece, first + subgroup_size);
    let end = walk_end(piece, max(a.last_count, b.last_count));
    let piece_start = piece.start - piece.tile_start;
    if end <= piece_start {
        return;
    }
    // What the whole subgroup can skip: entries past its largest last-contributor count, and
    // splats that miss its block of the tile.
    let subgroup_last = subgroupMax(max(a.last_count, b.last_count));
    let rows = vec2<f32>(subgroupMin(min(a.centre.y, b.centre.y)), subgroupMax(max(a.centre.y, b.centre.y)));
    let columns = vec2<f32>(subgroupMin(min(a.centre.x, b.centre.x)), subgroupMax(max(a.centre.x, b.centre.x)));
    var window_end = min(end, max(subgroup_last, piece_start));
    while window_end > piece_start {
        let in_window = min(subgroup_size, window_end - piece_start);
        var s = no_splat();
        var id = 0u;
        var seen = false;
        if subgroup_lane < in_window {
            id = intersection_gaussians[piece.tile_start + window_end - 1u - subgroup_lane];
            s = splats[id];
            seen = reaches_block(s, rows, columns);
        }
        let ballot = subgroupBallot(seen);
        for (var word = 0u; word < 4u; word++) {
            var bits = ballot[word];
            while bits != 0u {
                let k = 32u * word + firstTrailingBit(bits);
                bits &= bits - 1u;
                let splat = shuffled_splat(s, k);
                let position = window_end - 1u - k;
                var ga = PixelGrad(zero_grad(), false);
                if position < a.last_count {
                    ga = pixel_gradient(splat, &a);
                }
                var gb = PixelGrad(zero_grad(), false);
                if position < b.last_count {
                    gb = pixel_gradient(splat, &b);
                }
                add_splat_gradient(
                    subgroupShuffle(id, k),
                    sum_grads(ga.grad, gb.grad),
                    ga.contributes || gb.contributes,
                    ids,
                );
            }
        }
        window_end -= in_window;
    }
}

fn sum_grads(a: SplatGrad, b: SplatGrad) -> SplatGrad {
    return SplatGrad(a.mean + b.mean, a.conic + b.conic, a.opacity + b.opacity, a.colour + b.colour);
}
#else
// One splat of a batch (slot j, relative list position `position`) at this invocation's
// pixel: its gradient there, summed over the subgroup by `gather_splat_gradient`.
fn backward_splat(j: u32, position: u32, pixel: ptr<function, WalkPixel>, ids: BackwardIds) {
    var g = PixelGrad(zero_grad(), false);
    if position < (*pixel).last_count && !outside_rows(backward_rows[j], (*pixel).centre) {
        g = pixel_gradient(backward_splats[j], pixel);
    }
    gather_splat_gradient(j, g.grad, g.contributes, ids);
}

// Backward without subgroups or in DETERMINISTIC mode: one pixel per invocation; the
// workgroup loads batches of splats into workgroup memory and every invocation walks them.
@compute @workgroup_size(256)
fn rasterize_backward(
    @builtin(workgroup_id) workgroup_id: vec3<u32>,
    @builtin(num_workgroups) num_workgroups: vec3<u32>,
    @builtin(local_invocation_index) local_index: u32,
#ifdef SUBGROUPS
    @builtin(subgroup_invocation_id) subgroup_lane: u32,
    @builtin(subgroup_size) subgroup_size: u32,
    @builtin(subgroup_id) subgroup_id: u32,
    @builtin(num_subgroups) subgroup_count: u32,
#endif
) {
#ifdef SUBGROUPS
    let ids = BackwardIds(local_index, subgroup_lane, subgroup_id, subgroup_size, subgroup_count);
#else
    let ids = BackwardIds(local_index, 0u, 0u, 1u, 1u);
#endif
    let piece = start_piece(workgroup_id, num_workgroups, local_index);
    if piece.end <= piece.start {
        return;
    }
    var pixel = start_walk(piece, local_index);
    let end = walk_end(piece, pixel.last_count);
    let piece_start = piece.start - piece.tile_start;
    let piece_end = piece.end - piece.tile_start;

#ifdef DETERMINISTIC
    // Entries no pixel reached have zero gradient; every slot of the piece is written.
    for (var p = max(end, piece_start) + local_index; p < piece_end; p += TILE_THREADS) {
        let slot = intersection_slots[piece.tile_start + p];
        for (var c = 0u; c < GRAD_2D_STRIDE; c++) {
            intersection_grads[slot * GRAD_2D_STRIDE + c] = 0.0;
        }
    }
#endif
    if end <= piece_start {
        return;
    }
    // Entries [piece_start, end), consumed back to front in batches of splats loaded into
    // workgroup memory.
    let batch_count = (end - piece_start + BACKWARD_BATCH - 1u) / BACKWARD_BATCH;
    for (var batch = 0u; batch < batch_count; batch++) {
        // This batch: relative positions [batch_end - in_batch, batch_end) of the tile's list.
        let batch_end = end - batch * BACKWARD_BATCH;
        let in_batch = min(BACKWARD_BATCH, batch_end - piece_start);
        workgroupBarrier();
        if local_index < in_batch {
            // Slot j holds relative position batch_end - 1 - j: back to front.
            let position = piece.tile_start + batch_end - 1u - local_index;
#ifdef DETERMINISTIC
            let slot = intersection_slots[position];
            backward_targets[local_index] = slot;
            let s = splats[intersection_gaussians[slot]];
#else
            let id = intersection_gaussians[position];
            backward_targets[local_index] = id;
            let s = splats[id];
#endif
            backward_splats[local_index] = s;
            backward_rows[local_index] = visible_rows(s);
            start_batch_slot(local_index);
        }
        workgroupBarrier();
        for (var j = 0u; j < in_batch; j++) {
            backward_splat(j, batch_end - 1u - j, &pixel, ids);
        }
        flush_batch(in_batch, ids);
    }
}
#endif
