//! Resource limits as the backends that can apply them take them: a container's cgroup
//! (the `container` backend's own runtime, and an OCI bundle's `linux.resources` for runc
//! and crun), in words for the plan, where they are part of a figure's identity.

use oci_spec::runtime::{
    LinuxCpuBuilder, LinuxMemoryBuilder, LinuxPidsBuilder, LinuxResources, LinuxResourcesBuilder,
};

/// The limits in words: `memory 256 MiB, cpus 0.5, pids 64`.
pub fn describe(limits: &container::Limits) -> String {
    let mut parts = Vec::new();
    if let Some(bytes) = limits.memory_max {
        parts.push(format!("memory {} MiB", bytes >> 20));
    }
    match limits.cpu {
        Some(container::Cpu::Quota {
            quota_us,
            period_us,
        }) if period_us > 0 => {
            #[allow(clippy::cast_precision_loss)]
            let cpus = quota_us as f64 / period_us as f64;
            parts.push(format!("cpus {cpus}"));
        }
        Some(container::Cpu::Weight(weight)) => parts.push(format!("cpu weight {weight}")),
        _ => {}
    }
    if let Some(pids) = limits.pids_max {
        parts.push(format!("pids {pids}"));
    }
    parts.join(", ")
}

/// The limits as an OCI bundle's `linux.resources`.
pub fn oci_resources(limits: &container::Limits) -> Result<LinuxResources, oci_spec::OciSpecError> {
    let signed = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    let mut resources = LinuxResourcesBuilder::default();
    if let Some(bytes) = limits.memory_max {
        resources = resources.memory(
            LinuxMemoryBuilder::default()
                .limit(signed(bytes))
                // No swap beyond the limit, as the container backend's cgroup has none.
                .swap(signed(bytes))
                .build()?,
        );
    }
    match limits.cpu {
        Some(container::Cpu::Quota {
            quota_us,
            period_us,
        }) => {
            resources = resources.cpu(
                LinuxCpuBuilder::default()
                    .quota(signed(quota_us))
                    .period(period_us)
                    .build()?,
            );
        }
        Some(container::Cpu::Weight(weight)) => {
            // v1 shares from a v2 weight, as the container runtime scales them (weight
            // 100 is the default 1024 shares).
            let shares = (weight * 1024 / 100).clamp(2, 262_144);
            resources = resources.cpu(LinuxCpuBuilder::default().shares(shares).build()?);
        }
        None => {}
    }
    if let Some(pids) = limits.pids_max {
        resources = resources.pids(LinuxPidsBuilder::default().limit(signed(pids)).build()?);
    }
    resources.build()
}

/// Limits from the command line's `--memory` (bytes), `--cpus` and `--pids`.
pub fn from_options(
    memory: Option<u64>,
    cpus: Option<f64>,
    pids: Option<u64>,
) -> container::Limits {
    let period_us = 100_000;
    container::Limits {
        memory_max: memory,
        cpu: cpus.map(|c| {
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let quota_us = (c * 100_000.0).round().max(1_000.0) as u64;
            container::Cpu::Quota {
                quota_us,
                period_us,
            }
        }),
        pids_max: pids,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_in_words_and_as_oci_resources() {
        let limits = from_options(Some(256 << 20), Some(0.5), Some(64));
        assert_eq!(describe(&limits), "memory 256 MiB, cpus 0.5, pids 64");
        let resources = oci_resources(&limits).unwrap();
        let json = serde_json::to_value(&resources).unwrap();
        assert_eq!(json["memory"]["limit"], 256 << 20);
        assert_eq!(json["cpu"]["quota"], 50_000);
        assert_eq!(json["cpu"]["period"], 100_000);
        assert_eq!(json["pids"]["limit"], 64);
        assert_eq!(describe(&container::Limits::default()), "");
    }
}
