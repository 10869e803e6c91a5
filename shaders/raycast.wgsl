// 3D view: GPU ray casting through the volume box.
// Maximum intensity projection, or direct volume rendering with an opacity
// ramp over the window, opacity corrected for the step length and early ray
// termination; labels composite as opaque coloured surfaces. Optional
// clipping keeps only the part of the volume on the low side of the
// crosshair planes that are enabled.

// Keep in sync with RayUniforms in src/render/mod.rs.
struct RayUniforms {
    world_from_clip: mat4x4<f32>,
    tex_from_world: mat4x4<f32>,
    // x: window low, y: window high, z: opacity scale, w: colormap row.
    window: vec4<f32>,
    // x: mode (0 MIP, 1 DVR), y: show labels, z: clip mask (bits xyz), w: steps.
    params: vec4<u32>,
    // xyz: crosshair in texture space (clip planes), w: has volume.
    clip: vec4<f32>,
    // xyz: label grid dims, w: has labels.
    dims: vec4<u32>,
};

@group(0) @binding(0) var<uniform> u: RayUniforms;
// Bindings 1-5, VertexOut, vs_main, label_of, label_color, colormap: common.wgsl.

fn to_tex(world: vec3<f32>) -> vec3<f32> {
    return (u.tex_from_world * vec4<f32>(world, 1.0)).xyz;
}

fn clipped(tex: vec3<f32>) -> bool {
    let m = u.params.z;
    return ((m & 1u) != 0u && tex.x > u.clip.x) || ((m & 2u) != 0u && tex.y > u.clip.y) || ((m & 4u) != 0u && tex.z > u.clip.z);
}

@fragment
fn fs_main(in: VertexOut) -> @location(0) vec4<f32> {
    let background = vec4<f32>(0.0, 0.0, 0.0, 1.0);
    if (u.clip.w == 0.0) {
        return background;
    }
    let near_h = u.world_from_clip * vec4<f32>(in.ndc, 0.0, 1.0);
    let far_h = u.world_from_clip * vec4<f32>(in.ndc, 1.0, 1.0);
    let origin = to_tex(near_h.xyz / near_h.w);
    let far_tex = to_tex(far_h.xyz / far_h.w);
    let dir = far_tex - origin;
    // Slab intersection with the unit box.
    let inv = 1.0 / select(dir, vec3<f32>(1e-9), abs(dir) < vec3<f32>(1e-9));
    let t0 = (vec3<f32>(0.0) - origin) * inv;
    let t1 = (vec3<f32>(1.0) - origin) * inv;
    let tmin = max(max(min(t0.x, t1.x), min(t0.y, t1.y)), max(min(t0.z, t1.z), 0.0));
    let tmax = min(min(max(t0.x, t1.x), max(t0.y, t1.y)), min(max(t0.z, t1.z), 1.0));
    if (tmax <= tmin) {
        return background;
    }
    let steps = max(u.params.w, 16u);
    let dt = (tmax - tmin) / f32(steps);
    // Opacity is defined per 1/256 of the box diagonal; correct for our step.
    let step_len = length(dir) * dt;
    let reference = 1.7320508 / 256.0;
    let span = max(u.window.y - u.window.x, 1e-6);

    var acc = vec4<f32>(0.0);
    var peak = 0.0;
    for (var i = 0u; i < steps; i = i + 1u) {
        let tex = origin + dir * (tmin + (f32(i) + 0.5) * dt);
        if (clipped(tex)) {
            continue;
        }
        let value = textureSampleLevel(volume, volume_sampler, tex, 0.0).r;
        let t = clamp((value - u.window.x) / span, 0.0, 1.0);
        if (u.params.x == 0u) {
            peak = max(peak, t);
            continue;
        }
        var rgb = colormap(t, u.window.w);
        var alpha = clamp(t * t * u.window.z, 0.0, 1.0);
        if (u.params.y == 1u && u.dims.w == 1u) {
            // With labels shown, tissue turns translucent so structures show through.
            alpha = alpha * 0.02;
            let id = label_of(tex, u.dims.xyz);
            if (id != 0u) {
                let lc = label_color(id);
                if (lc.a > 0.0) {
                    rgb = lc.rgb;
                    alpha = 0.6;
                }
            }
        }
        alpha = 1.0 - pow(1.0 - alpha, step_len / reference);
        acc = vec4<f32>(acc.rgb + (1.0 - acc.a) * alpha * rgb, acc.a + (1.0 - acc.a) * alpha);
        if (acc.a > 0.97) {
            break;
        }
    }
    if (u.params.x == 0u) {
        let rgb = colormap(peak, u.window.w);
        return vec4<f32>(rgb, 1.0);
    }
    return vec4<f32>(acc.rgb, 1.0);
}
