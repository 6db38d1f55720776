//! `neuralrg-gpu info`: the adapter, its limits and features, and every adapter found.

use anyhow::Result;

use neuralrg_gpu::gpu::GpuContext;

pub fn print_info(ctx: &GpuContext, json: bool) -> Result<()> {
    let r = ctx.report();
    if json {
        println!("{}", serde_json::to_string(&r)?);
        return Ok(());
    }
    println!("adapter      {}", r.name);
    println!("backend      {} ({})", r.backend, r.device_type);
    println!("driver       {} {}", r.driver, r.driver_info);
    println!("limits");
    println!(
        "  storage buffer binding   {} bytes",
        r.max_storage_buffer_binding_size
    );
    println!("  buffer size              {} bytes", r.max_buffer_size);
    println!(
        "  uniform buffer binding   {} bytes",
        r.max_uniform_buffer_binding_size
    );
    println!(
        "  storage buffers / stage  {}",
        r.max_storage_buffers_per_shader_stage
    );
    println!(
        "  workgroup storage        {} bytes",
        r.max_compute_workgroup_storage_size
    );
    println!(
        "  invocations / workgroup  {}",
        r.max_compute_invocations_per_workgroup
    );
    println!(
        "  workgroups / dimension   {}",
        r.max_compute_workgroups_per_dimension
    );
    println!("features");
    println!("  SHADER_F16       {}", r.shader_f16);
    println!("  TIMESTAMP_QUERY  {}", r.timestamp_query);
    println!("  SUBGROUP         {}", r.subgroup);
    println!("adapters found (* this one; --adapter NAME picks one by part of its name)");
    for a in &r.adapters {
        let unfit = a
            .unsuitable
            .as_ref()
            .map(|why| format!(": cannot run the kernels, {why}"))
            .unwrap_or_default();
        println!(
            "  {} {}  ({}, {}){unfit}",
            if a.in_use { "*" } else { " " },
            a.name,
            a.backend,
            a.device_type
        );
    }
    Ok(())
}
