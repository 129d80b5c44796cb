//! What changes across the hosts of a fleet, in plain words, drawn from the numbers the
//! fleet document holds: the KVM each host offers (hardware, nested under a hypervisor,
//! software, emulated), its cgroup layout, its CPU vendor, and which figures differ
//! between hosts beyond what their own runs vary by. A note is written only when the
//! document has what it speaks of.

use crate::document::{Backend, Figure, Host, Metric, Scenario};
use crate::figure_text::{number, times};

use super::{FigureKey, Fleet};

/// The teaching notes of a fleet, one paragraph each.
pub fn notes(fleet: &Fleet) -> Vec<String> {
    let mut out = Vec::new();
    out.extend(kvm(fleet));
    out.extend(cgroups(fleet));
    out.extend(vendors(fleet));
    out.extend(spread(fleet));
    out
}

/// The CPU's vendor, from its model name.
pub fn vendor(host: &Host) -> String {
    let model = host.cpu_model.to_ascii_lowercase();
    if model.contains("amd") {
        "AMD".to_owned()
    } else if model.contains("intel") {
        "Intel".to_owned()
    } else {
        host.cpu_model
            .split_whitespace()
            .next()
            .unwrap_or("unknown")
            .to_owned()
    }
}

/// The host's KVM in a few words: hardware, nested (hardware KVM offered by a host that
/// itself runs under a hypervisor), software, emulated (QEMU TCG), or none.
pub fn kvm_kind(host: &Host) -> String {
    let label = host.kvm.label();
    if host.emulated {
        return format!("{label} on an emulated CPU (QEMU TCG)");
    }
    match (host.kvm.flavour.as_str(), &host.hypervisor) {
        ("hardware", Some(under)) if !under.is_empty() => format!("nested: {label} under {under}"),
        ("hardware", Some(_)) => format!("nested: {label} under a hypervisor"),
        _ => label,
    }
}

/// The startup time of `backend` on `host`, when measured and not a raw cost.
fn startup<'a>(fleet: &'a Fleet, host: &'a str, backend: &str) -> Option<&'a Figure> {
    fleet.figures_of(host).find(|f| {
        f.backend == backend && f.scenario == Scenario::Startup && f.metric == Metric::TimeToStart
    })
}

fn group_by(fleet: &Fleet, key: impl Fn(&Host) -> String) -> Vec<(String, Vec<String>)> {
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for m in &fleet.hosts {
        let k = key(&m.results.host);
        match groups.iter_mut().find(|(g, _)| *g == k) {
            Some((_, names)) => names.push(m.name.clone()),
            None => groups.push((k, vec![m.name.clone()])),
        }
    }
    groups
}

fn hosts_phrase(names: &[String]) -> String {
    names.join(", ")
}

/// What one kind of KVM means for the VM figures, with the hosts that offer it.
fn kvm_meaning(host: &Host, names: &str) -> String {
    if host.emulated {
        return format!(
            "on {names} the CPU itself is emulated (QEMU TCG): its figures test correctness, \
             and its timings describe no real machine"
        );
    }
    match host.kvm.flavour.as_str() {
        "hardware" if host.hypervisor.is_some() => format!(
            "on {names} KVM is nested (the host is itself a VM): every exit goes through two \
             hypervisors, so exits and VM builds cost more than on bare metal"
        ),
        "hardware" => format!("on {names} hardware KVM runs guest code on the CPU itself"),
        "software" => format!(
            "on {names} KVM is software: it emulates what the CPU would do and boots only \
             micro guests, whose figures are the hypervisor's own costs, never set against a \
             container"
        ),
        _ => format!("{names} offer no KVM, and so no VM figures"),
    }
}

/// What the KVM flavours mean for the VM figures.
fn kvm(fleet: &Fleet) -> Option<String> {
    let groups = group_by(fleet, kvm_kind);
    let vm_hosts: Vec<(String, &Figure)> = fleet
        .hosts
        .iter()
        .filter_map(|m| {
            Some((
                m.name.clone(),
                startup(fleet, &m.name, Backend::Microvm.name())?,
            ))
        })
        .collect();
    let times: Vec<String> = vm_hosts
        .iter()
        .map(|(h, f)| {
            let guest = if f.raw_cost {
                "a micro guest"
            } else {
                "a Linux guest"
            };
            format!("{} ms on {h} ({guest})", number(f.summary.median))
        })
        .collect();
    let measured = if times.is_empty() {
        String::new()
    } else {
        format!(" The microvm's time to start: {}.", times.join("; "))
    };
    if groups.len() == 1 {
        let (kind, _) = &groups[0];
        return Some(format!(
            "KVM: every host offers the same KVM ({kind}), so the VM figures differ between \
             hosts by CPU and kernel only.{measured}"
        ));
    }
    let listed: Vec<String> = groups
        .iter()
        .map(|(kind, names)| format!("{kind} on {}", hosts_phrase(names)))
        .collect();
    let meanings: Vec<String> = groups
        .iter()
        .filter_map(|(_, names)| {
            let host = &fleet.member(names.first()?)?.results.host;
            Some(kvm_meaning(host, &hosts_phrase(names)))
        })
        .collect();
    Some(format!(
        "KVM: the hosts differ in the KVM they offer ({}): {}.{measured}",
        listed.join("; "),
        meanings.join("; ")
    ))
}

/// What the cgroup layouts mean for the container figures.
fn cgroups(fleet: &Fleet) -> Option<String> {
    let groups = group_by(fleet, |h| h.cgroup.clone());
    let ratios: Vec<String> = fleet
        .hosts
        .iter()
        .filter_map(|m| {
            let f = startup(fleet, &m.name, Backend::Container.name())?;
            let r = f.vs_baseline.as_ref()?;
            Some(format!(
                "{} on {} ({})",
                times(r.estimate.value),
                m.name,
                m.results.host.cgroup
            ))
        })
        .collect();
    let measured = if ratios.is_empty() {
        String::new()
    } else {
        format!(
            " The container's time to start against {}: {}.",
            fleet.baseline(),
            ratios.join("; ")
        )
    };
    if groups.len() == 1 {
        return Some(format!(
            "cgroups: every host has the {} layout, so containers are limited and accounted \
             the same way on each.{measured}",
            groups[0].0
        ));
    }
    let listed: Vec<String> = groups
        .iter()
        .map(|(layout, names)| format!("{layout} on {}", hosts_phrase(names)))
        .collect();
    Some(format!(
        "cgroups: the hosts differ in their cgroup layout ({}). A container's cgroup is made \
         and filled differently in v1 (one directory per controller) and v2 (one tree), and \
         its memory is accounted differently, so container start times and cgroup memory \
         figures differ across layouts for that reason as well as the machine's.{measured}",
        listed.join("; ")
    ))
}

/// What the CPUs mean for every figure.
fn vendors(fleet: &Fleet) -> Option<String> {
    let groups = group_by(fleet, |h| format!("{} ({})", vendor(h), h.cpu_model));
    let native: Vec<(String, f64)> = fleet
        .hosts
        .iter()
        .filter_map(|m| {
            Some((
                m.name.clone(),
                startup(fleet, &m.name, Backend::Native.name())?
                    .summary
                    .median,
            ))
        })
        .collect();
    let floor = match native.iter().min_by(|a, b| a.1.total_cmp(&b.1)) {
        Some(least) if native.len() > 1 => {
            let most = native
                .iter()
                .max_by(|a, b| a.1.total_cmp(&b.1))
                .unwrap_or(least);
            format!(
                " A plain process started in {} ms on {} and {} ms on {}: that is each \
                 host's own floor, and ratios to native set every backend against it, so \
                 compare ratios, not milliseconds, across hosts.",
                number(least.1),
                least.0,
                number(most.1),
                most.0
            )
        }
        _ => String::new(),
    };
    let vendors = group_by(fleet, vendor);
    if groups.len() == 1 {
        return Some(format!(
            "CPU: every host has the same CPU, {}.{floor}",
            groups[0].0
        ));
    }
    let listed: Vec<String> = groups
        .iter()
        .map(|(cpu, names)| format!("{cpu} on {}", hosts_phrase(names)))
        .collect();
    let why = if vendors.len() > 1 {
        "Vendors differ in how they virtualize (Intel VT-x and AMD-V exit and page \
         differently), and models in speed."
    } else {
        "They are of one vendor, and differ in model, so in speed."
    };
    Some(format!(
        "CPU: the hosts have different CPUs ({}). {why}{floor}",
        listed.join("; ")
    ))
}

/// Which figures differ across hosts beyond their own runs' spread.
fn spread(fleet: &Fleet) -> Option<String> {
    if fleet.hosts.len() < 2 {
        return None;
    }
    let mut apart: Vec<(f64, String)> = Vec::new();
    let mut together = 0usize;
    for key in fleet.figure_keys() {
        let figures: Vec<(&str, &Figure)> = fleet
            .hosts
            .iter()
            .filter_map(|m| Some((m.name.as_str(), fleet.figure(&m.name, &key)?)))
            .collect();
        if figures.len() < 2 {
            continue;
        }
        let Some((low, high)) = extremes(&figures) else {
            continue;
        };
        if disjoint(low.1, high.1) {
            let factor = if low.1.summary.median > 0.0 {
                high.1.summary.median / low.1.summary.median
            } else {
                f64::INFINITY
            };
            apart.push((factor, describe_apart(&key, low, high, factor)));
        } else {
            together += 1;
        }
    }
    if apart.is_empty() && together == 0 {
        return None;
    }
    apart.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut text = format!(
        "Across hosts: {} of {} figures differ between hosts beyond what their own runs \
         vary by (the highest and lowest medians' intervals do not overlap)",
        apart.len(),
        apart.len() + together
    );
    if apart.is_empty() {
        text.push_str(
            ": the hosts measure alike, and what differs between them is the noise of \
             their runs.",
        );
    } else {
        let shown: Vec<&str> = apart.iter().take(3).map(|(_, t)| t.as_str()).collect();
        text.push_str(&format!("; the largest: {}.", shown.join("; ")));
    }
    Some(text)
}

/// A host's name and its figure.
type HostFigure<'a> = (&'a str, &'a Figure);

/// The hosts with the lowest and highest median of a figure, distributions only.
fn extremes<'a>(figures: &[(&'a str, &'a Figure)]) -> Option<(HostFigure<'a>, HostFigure<'a>)> {
    let spread: Vec<&(&str, &Figure)> = figures
        .iter()
        .filter(|(_, f)| f.summary.ci.is_some())
        .collect();
    let low = spread
        .iter()
        .min_by(|a, b| a.1.summary.median.total_cmp(&b.1.summary.median))?;
    let high = spread
        .iter()
        .max_by(|a, b| a.1.summary.median.total_cmp(&b.1.summary.median))?;
    Some((**low, **high))
}

/// Whether two figures' median intervals do not overlap.
fn disjoint(low: &Figure, high: &Figure) -> bool {
    match (&low.summary.ci, &high.summary.ci) {
        (Some(a), Some(b)) => a.high < b.low,
        _ => false,
    }
}

fn describe_apart(
    key: &FigureKey,
    low: (&str, &Figure),
    high: (&str, &Figure),
    factor: f64,
) -> String {
    format!(
        "{} is {} on {} and {} on {} ({})",
        key.name(),
        crate::figure_text::median(low.1),
        low.0,
        crate::figure_text::median(high.1),
        high.0,
        times(factor)
    )
}
