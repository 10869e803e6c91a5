// Shared by slice.wgsl and raycast.wgsl (prepended to each at build time):
// the view's textures (bindings 1-5; each shader declares its own uniform
// struct at binding 0), the full-viewport triangle, and lookups.

@group(0) @binding(1) var volume: texture_3d<f32>;
@group(0) @binding(2) var volume_sampler: sampler;
@group(0) @binding(3) var labels: texture_3d<u32>;
@group(0) @binding(4) var palette: texture_2d<f32>;
@group(0) @binding(5) var colormaps: texture_2d<f32>;

struct VertexOut {
    @builtin(position) position: vec4<f32>,
    // Normalised device coordinates of the fragment in the view: x right, y up.
    @location(0) ndc: vec2<f32>,
};

// One oversized triangle covering the viewport: (-1,-1), (3,-1), (-1,3).
@vertex
fn vs_main(@builtin(vertex_index) index: u32) -> VertexOut {
    let x = f32(i32(index & 1u) * 4 - 1);
    let y = f32(i32(index >> 1u) * 4 - 1);
    var out: VertexOut;
    out.position = vec4<f32>(x, y, 0.0, 1.0);
    out.ndc = vec2<f32>(x, y);
    return out;
}

fn inside(tex: vec3<f32>) -> bool {
    return all(tex >= vec3<f32>(0.0)) && all(tex <= vec3<f32>(1.0));
}

// Label id of the voxel containing `tex` in a grid of `dims` (0 outside).
fn label_of(tex: vec3<f32>, dims: vec3<u32>) -> u32 {
    if (!inside(tex)) {
        return 0u;
    }
    let d = vec3<f32>(dims);
    let voxel = vec3<i32>(clamp(floor(tex * d), vec3<f32>(0.0), d - vec3<f32>(1.0)));
    return textureLoad(labels, voxel, 0).r;
}

// RGBA of a label id (alpha 0: hidden).
fn label_color(id: u32) -> vec4<f32> {
    return textureLoad(palette, vec2<i32>(i32(id % 256u), i32(id / 256u)), 0);
}

// Colormap `row` at t in [0, 1].
fn colormap(t: f32, row: f32) -> vec3<f32> {
    return textureLoad(colormaps, vec2<i32>(i32(round(clamp(t, 0.0, 1.0) * 255.0)), i32(row)), 0).rgb;
}
