// bench/meter: runs one command of the benchmark and measures what it cost.
//
//   meter CGROUP [HOST_CGROUP...] -- CMD [ARGS...]
//
// CMD runs inside CGROUP (an empty cgroup2 directory: `sh` moves itself there before it execs
// CMD), so every process the tool starts is counted, also the ones that leave its process tree
// (Ansible's ControlPersist ssh masters daemonize). Printed on one line, after CMD exits:
//
//   wall=SECONDS cpu=SECONDS user=SECONDS sys=SECONDS pss_kib=KIB hosts_cpu=SECONDS samples=N
//
// - wall: from the spawn to CMD's exit.
// - cpu/user/sys: the cgroup's cpu.stat usage_usec/user_usec/system_usec delta (cgroup2 keeps
//   these core counters without the cpu controller, which this machine's hybrid layout does not
//   give to cgroup2).
// - pss_kib: the peak, over samples taken every ~20 ms, of the sum of `Pss:` in
//   /proc/PID/smaps_rollup over the cgroup's processes: proportional set size, shared pages
//   divided among their users, so N ssh clients of one binary are not counted N times. A sample
//   costs time of its own (a page-table walk per process), so with many processes the interval
//   is 20 ms plus that; a process that lives less than an interval can be missed.
// - hosts_cpu: the sum over HOST_CGROUPs (the containers') of the usage_usec delta.
//
// Exits with CMD's exit code. std only: built with `rustc -O` by bench/run.sh, no cargo project.
use std::fs;
use std::process::{Command, exit};
use std::thread::sleep;
use std::time::{Duration, Instant};

fn cpu_stat(dir: &str) -> [u64; 3] {
    let mut v = [0u64; 3];
    if let Ok(text) = fs::read_to_string(format!("{dir}/cpu.stat")) {
        for line in text.lines() {
            let mut it = line.split_whitespace();
            let (Some(k), Some(n)) = (it.next(), it.next()) else {
                continue;
            };
            let n = n.parse().unwrap_or(0);
            match k {
                "usage_usec" => v[0] = n,
                "user_usec" => v[1] = n,
                "system_usec" => v[2] = n,
                _ => {}
            }
        }
    }
    v
}

fn hosts_usage(hosts: &[String]) -> u64 {
    hosts.iter().map(|h| cpu_stat(h)[0]).sum()
}

// PSS of every process in the cgroup, in KiB. A process that exits between the read of
// cgroup.procs and its smaps_rollup simply counts 0.
fn pss_kib(cg: &str) -> u64 {
    let Ok(procs) = fs::read_to_string(format!("{cg}/cgroup.procs")) else {
        return 0;
    };
    let mut sum = 0;
    for pid in procs.lines() {
        let Ok(text) = fs::read_to_string(format!("/proc/{pid}/smaps_rollup")) else {
            continue;
        };
        if let Some(line) = text.lines().find(|l| l.starts_with("Pss:")) {
            sum += line
                .split_whitespace()
                .nth(1)
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    sum
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(sep) = args.iter().position(|a| a == "--") else {
        eprintln!("usage: meter CGROUP [HOST_CGROUP...] -- CMD [ARGS...]");
        exit(2);
    };
    if sep == 0 || sep + 1 >= args.len() {
        eprintln!("usage: meter CGROUP [HOST_CGROUP...] -- CMD [ARGS...]");
        exit(2);
    }
    let cg = args[0].clone();
    let hosts = &args[1..sep];
    let cmd = &args[sep + 1..];

    let cpu0 = cpu_stat(&cg);
    let hosts0 = hosts_usage(hosts);
    let start = Instant::now();
    // $0 is the cgroup; the shell joins it, then becomes CMD.
    let mut child = match Command::new("sh")
        .arg("-c")
        .arg("echo $$ >\"$0/cgroup.procs\" && exec \"$@\"")
        .arg(&cg)
        .args(cmd)
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("meter: cannot start sh: {e}");
            exit(1);
        }
    };
    let mut peak = 0;
    let mut samples = 0u64;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) => {}
            Err(e) => {
                eprintln!("meter: wait: {e}");
                exit(1);
            }
        }
        peak = peak.max(pss_kib(&cg));
        samples += 1;
        sleep(Duration::from_millis(20));
    };
    let wall = start.elapsed().as_secs_f64();
    let cpu1 = cpu_stat(&cg);
    let hosts1 = hosts_usage(hosts);
    let s = |a: u64, b: u64| b.saturating_sub(a) as f64 / 1e6;
    println!(
        "wall={wall:.3} cpu={:.3} user={:.3} sys={:.3} pss_kib={peak} hosts_cpu={:.3} samples={samples}",
        s(cpu0[0], cpu1[0]),
        s(cpu0[1], cpu1[1]),
        s(cpu0[2], cpu1[2]),
        s(hosts0, hosts1),
    );
    exit(status.code().unwrap_or(1));
}
