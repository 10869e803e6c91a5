// Slice view: resamples the volume in world space for one view.
// The vertex stage draws one triangle covering the view's viewport; the
// fragment stage maps its normalised screen position to texture space with
// `tex_from_screen`, samples the intensity (R16Float holding values
// normalised to the volume's range), applies the window and colormap, and
// blends the label overlay (filled or outlined).

// Keep in sync with SliceUniforms in src/render/mod.rs.
struct SliceUniforms {
    tex_from_screen: mat4x4<f32>,
    // x: window low, y: window high (normalised intensity),
    // z: label opacity, w: colormap row.
    window: vec4<f32>,
    // x: outline labels, y: nearest sampling, z: show labels, w: has labels.
    flags: vec4<u32>,
    // xyz: label grid dims, w: has volume.
    dims: vec4<u32>,
    // xy: viewport size in pixels.
    screen: vec4<f32>,
};

@group(0) @binding(0) var<uniform> u: SliceUniforms;
// Bindings 1-5, VertexOut, vs_main, label_of, label_color, colormap: common.wgsl.

fn label_at(tex: vec3<f32>) -> u32 {
    return label_of(tex, u.dims.xyz);
}

@fragment
fn fs_main(in: VertexOut) -> @location(0) vec4<f32> {
    let tex = (u.tex_from_screen * vec4<f32>(in.ndc, 0.0, 1.0)).xyz;
    if (u.dims.w == 0u || !inside(tex)) {
        return vec4<f32>(0.0, 0.0, 0.0, 1.0);
    }
    var value: f32;
    if (u.flags.y == 1u) {
        let vdims = vec3<f32>(textureDimensions(volume));
        let voxel = vec3<i32>(clamp(floor(tex * vdims), vec3<f32>(0.0), vdims - vec3<f32>(1.0)));
        value = textureLoad(volume, voxel, 0).r;
    } else {
        value = textureSampleLevel(volume, volume_sampler, tex, 0.0).r;
    }
    let span = max(u.window.y - u.window.x, 1e-6);
    let t = clamp((value - u.window.x) / span, 0.0, 1.0);
    var color = colormap(t, u.window.w);

    if (u.flags.z == 1u && u.flags.w == 1u) {
        let id = label_at(tex);
        if (id != 0u) {
            let lc = label_color(id);
            var show = lc.a > 0.0;
            if (show && u.flags.x == 1u) {
                // Outline: keep only pixels whose neighbour one pixel away differs.
                let px = vec2<f32>(2.0) / max(u.screen.xy, vec2<f32>(1.0));
                let right = (u.tex_from_screen * vec4<f32>(in.ndc + vec2<f32>(px.x, 0.0), 0.0, 1.0)).xyz;
                let left = (u.tex_from_screen * vec4<f32>(in.ndc - vec2<f32>(px.x, 0.0), 0.0, 1.0)).xyz;
                let up = (u.tex_from_screen * vec4<f32>(in.ndc + vec2<f32>(0.0, px.y), 0.0, 1.0)).xyz;
                let down = (u.tex_from_screen * vec4<f32>(in.ndc - vec2<f32>(0.0, px.y), 0.0, 1.0)).xyz;
                show = label_at(right) != id || label_at(left) != id || label_at(up) != id || label_at(down) != id;
            }
            if (show) {
                let a = select(u.window.z, 1.0, u.flags.x == 1u);
                color = mix(color, lc.rgb, a);
            }
        }
    }
    return vec4<f32>(color, 1.0);
}
