// Where a splat's alpha can reach 1/255: its ellipse and the x range of the ellipse within a
// horizontal strip, with margins far above f32 rounding. Binning leaves out the tiles of a
// splat's rectangle that no strip of 16 pixel rows reaches (bin.wgsl); the rasterizer's
// subgroups skip the splats that miss their block of a tile the same way (rasterize.wgsl).
// Only for `#include` after raster_types.wgsl (Splat).

// Relative slack of the culling test, in units of the quadratic form's largest term on the
// ellipse: f32 rounding of those terms (in here and in the rasterizer) is ~1e-7 of it.
const CULL_MARGIN: f32 = 1e-4;
// Splats whose conic has det < this * a * c are not culled: for such thin ellipses a c - b^2
// loses too many digits in f32 (its relative error is ~2e-7 / this).
const MIN_CONIC_CONDITION: f32 = 1e-3;
// Extra room on each side of a strip's x range, as a fraction of the ellipse's x extent: the
// square roots near the ellipse's top and bottom amplify the determinant's error to
// sqrt(2e-4) ~ 0.014 of the extent.
const STRIP_SLACK: f32 = 0.05;

// Where a splat can reach alpha >= 1/255 at a pixel centre: the ellipse q(d) <= threshold with
// q(d) = d^T conic d (d = centre - mean) and threshold = 2 ln(255 opacity) plus the margin.
// Its extents are sqrt(c t / det) in x and sqrt(a t / det) in y (det = a c - b^2 of the conic).
struct Reach {
    // False: keep every tile of the rectangle (ill-conditioned or non-finite).
    cull: bool,
    threshold: f32,
    det: f32,
    extent: vec2<f32>,
}

fn splat_reach(s: Splat) -> Reach {
    let a = s.conic.x;
    let b = s.conic.y;
    let c = s.conic.z;
    let det = a * c - b * b;
    let t = 2.0 * log(255.0 * s.opacity);
    let extent = sqrt(vec2<f32>(c, a) * t / det);
    let scale = a * extent.x * extent.x + c * extent.y * extent.y + 2.0 * abs(b) * extent.x * extent.y;
    let threshold = t + CULL_MARGIN * (scale + 1.0);
    let cull = det >= MIN_CONIC_CONDITION * a * c && is_finite(scale);
    return Reach(cull, threshold, det, sqrt(vec2<f32>(c, a) * threshold / det));
}

// The x range [left, right] (relative to the mean) of the ellipse within the horizontal strip
// dy in [low, high]; empty (left > right) when the strip misses it. The ellipse's right edge
// x(dy) = (-b dy + sqrt(a t - det dy^2)) / a is concave with its maximum `extent.x` at
// dy = -b extent.x / c, the left edge mirrors it.
fn strip_x_range(s: Splat, reach: Reach, low: f32, high: f32) -> vec2<f32> {
    let a = s.conic.x;
    let b = s.conic.y;
    let c = s.conic.z;
    // (The y extent gets the same room as the x range below.)
    let y_reach = reach.extent.y * (1.0 + STRIP_SLACK) + 0.05;
    let y0 = max(low, -y_reach);
    let y1 = min(high, y_reach);
    if !(y0 <= y1) {
        return vec2<f32>(1.0, -1.0);
    }
    let root0 = sqrt(max(0.0, a * reach.threshold - reach.det * y0 * y0));
    let root1 = sqrt(max(0.0, a * reach.threshold - reach.det * y1 * y1));
    let peak = b * reach.extent.x / c;
    var right = max(-b * y0 + root0, -b * y1 + root1) / a;
    if y0 <= -peak && -peak <= y1 {
        right = reach.extent.x;
    }
    var left = min(-b * y0 - root0, -b * y1 - root1) / a;
    if y0 <= peak && peak <= y1 {
        left = -reach.extent.x;
    }
    let slack = STRIP_SLACK * reach.extent.x + 0.05;
    return vec2<f32>(left - slack, right + slack);
}

// Whether splat `s` can reach alpha >= 1/255 at a pixel centre of the rows `rows` and columns
// `columns` (centre coordinates, inclusive): the strip test on a block of a tile.
// Only a definite miss is false (NaN keeps the splat).
fn reaches_block(s: Splat, rows: vec2<f32>, columns: vec2<f32>) -> bool {
    let reach = splat_reach(s);
    if !reach.cull {
        return true;
    }
    let range = strip_x_range(s, reach, rows.x - s.mean.y, rows.y - s.mean.y);
    let miss = range.x > range.y || range.x > columns.y - s.mean.x || range.y < columns.x - s.mean.x;
    return !miss;
}

// The tile columns [first, end) of row `y` of the rectangle [tile_min, tile_max) that the
// splat reaches (where the strip's x range overlaps a tile's pixel centres). NaN anywhere
// keeps the whole row.
fn reached_columns(s: Splat, reach: Reach, y: u32, tile_min: vec2<u32>, tile_max: vec2<u32>) -> vec2<u32> {
    if !reach.cull {
        return vec2<u32>(tile_min.x, tile_max.x);
    }
    let tile = f32(TILE_SIZE);
    let low = f32(y) * tile + 0.5 - s.mean.y;
    let range = strip_x_range(s, reach, low, low + tile - 1.0);
    if range.x > range.y {
        return vec2<u32>(0u);
    }
    // Tile x reaches when x * 16 + 0.5 - mean.x <= right and x * 16 + 15.5 - mean.x >= left.
    let first = ceil((range.x + s.mean.x - (tile - 0.5)) / tile);
    let last = floor((range.y + s.mean.x - 0.5) / tile);
    if !(first <= last) && !(first > last) {
        return vec2<u32>(tile_min.x, tile_max.x); // NaN
    }
    let lo = clamp(first, f32(tile_min.x), f32(tile_max.x));
    let hi = clamp(last + 1.0, f32(tile_min.x), f32(tile_max.x));
    return vec2<u32>(u32(lo), u32(max(lo, hi)));
}

// The number of tiles of the rectangle [tile_min, tile_max) that splat `s` reaches: the entries
// binning emits for it. The projection counts them while the splat is in registers, so binning
// reads one u32 per Gaussian in depth order instead of the whole splat.
fn reached_tile_count(s: Splat, tile_min: vec2<u32>, tile_max: vec2<u32>) -> u32 {
    let reach = splat_reach(s);
    var count = 0u;
    for (var y = tile_min.y; y < tile_max.y; y++) {
        let columns = reached_columns(s, reach, y, tile_min, tile_max);
        count += columns.y - columns.x;
    }
    return count;
}
