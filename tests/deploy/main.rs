//! The Helm chart (deploy/helm/eghostbuster), rendered and linted by Helm's
//! own engine (Helm's Go SDK through the helm-python-sdk package from PyPI,
//! installed by scripts/deps.sh; no cluster), then checked: the manifests'
//! structure, what the agent is asked to do, and the pod's uninstall
//! logic, run for real on this host with a scoped agent.
//!
//! Without the renderer the chart tests skip, and with
//! EGHOSTBUSTER_REQUIRE_BPF=1 (CI) a skip is a failure. Rendering and the
//! YAML helpers: chart.rs.

mod chart;
#[path = "../common/mod.rs"]
mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use chart::*;
use yaml_rust2::Yaml;

/// Measured by scripts/measure-agent.sh 4096 8192 (values.yaml,
/// resources): idle RSS + BPF maps (the lock table preallocated for the
/// chart's 8192), and the peak cost of one tracked lock (RSS), in bytes.
const IDLE_BYTES: u64 = (10_200 + 10_300) * 1024;
const PER_LOCK_BYTES: u64 = 700;

#[test]
fn chart_lints_renders_and_validates() {
    let Some(py) = renderer() else { return };
    let r = render(
        &py,
        &[
            ("ci", serde_json::json!({})),
            (
                "sockets-only",
                serde_json::json!({
                    "locks": {"enabled": false},
                    "sockets": {"ports": [8080, 8443], "excludePorts": [22], "closeWaitTimeout": "2m"},
                    "dryRun": false,
                    "probes": {"enabled": false},
                    "uninstall": {"unpin": false},
                    "metrics": {"port": 29700},
                    "nodeSelector": {"role": "edge"},
                    "tolerations": [],
                }),
            ),
            ("bare-defaults", serde_json::json!({})),
            (
                "tag-not-digest",
                serde_json::json!({"image": {"digest": "latest"}}),
            ),
            (
                "nothing-to-watch",
                serde_json::json!({"locks": {"enabled": false}, "sockets": {"enabled": false}}),
            ),
            (
                "probes-without-metrics",
                serde_json::json!({"metrics": {"enabled": false}}),
            ),
            ("typo", serde_json::json!({"scop": {"paths": ["/srv"]}})),
        ],
    );

    // helm lint --strict: nothing above "info" (icon recommended)
    let msgs = r.lint["messages"].as_array().unwrap();
    for m in msgs {
        assert!(
            m["severity"].as_i64().unwrap() <= 1,
            "helm lint --strict: {m}"
        );
    }
    assert!(
        r.lint["errors"]
            .as_array()
            .map(|e| e.is_empty())
            .unwrap_or(true),
        "helm lint: {}",
        r.lint["errors"]
    );

    // what must not render, and says why
    for (case, why) in [
        ("bare-defaults", "digest"),
        ("tag-not-digest", "digest"),
        ("nothing-to-watch", "nothing to watch"),
        ("probes-without-metrics", "metrics.enabled"),
        ("typo", "scop"),
    ] {
        match &r.cases[case] {
            Err(e) => assert!(e.contains(why), "{case}: {e}"),
            Ok(_) => panic!("{case} rendered"),
        }
    }

    // --- the default deployment (CI digests) ---
    let docs = r.cases["ci"].as_ref().expect("ci renders");
    check_objects(docs);
    let ds = one(docs, "DaemonSet");
    let pod = &ds["spec"]["template"]["spec"];
    assert_eq!(
        ds["spec"]["selector"]["matchLabels"]
            .as_hash()
            .unwrap()
            .iter()
            .filter(
                |(k, v)| ds["spec"]["template"]["metadata"]["labels"][k.as_str().unwrap()] != **v
            )
            .count(),
        0,
        "the selector must match the pod labels"
    );
    assert_eq!(pod["hostPID"].as_bool(), Some(true));
    assert_eq!(pod["hostNetwork"].as_bool(), Some(true));
    assert_eq!(pod["automountServiceAccountToken"].as_bool(), Some(false));
    let sa_name = pod["serviceAccountName"].as_str().unwrap();
    let sa = kind(docs, "ServiceAccount")
        .into_iter()
        .find(|s| s["metadata"]["name"].as_str() == Some(sa_name))
        .expect("the pod's service account is rendered");
    assert_eq!(sa["automountServiceAccountToken"].as_bool(), Some(false));
    assert!(sa["metadata"]["annotations"]["helm.sh/hook"].is_badvalue());

    let c = agent_container(ds);
    let containers: Vec<&Yaml> = pod["containers"]
        .as_vec()
        .unwrap()
        .iter()
        .chain(pod["initContainers"].as_vec().unwrap())
        .collect();
    for ctr in &containers {
        let image = ctr["image"].as_str().unwrap();
        let (repo, digest) = image.split_once("@sha256:").expect("image by digest");
        assert_eq!(digest.len(), 64, "{image}");
        assert!(
            !repo.rsplit('/').next().unwrap().contains(':'),
            "a tag: {image}"
        );
    }
    assert_eq!(c["securityContext"]["privileged"].as_bool(), Some(true));

    // every volume mounted exists; the ConfigMap mounted is rendered
    let volumes: Vec<&Yaml> = pod["volumes"].as_vec().unwrap().iter().collect();
    let vol_names: Vec<&str> = volumes.iter().filter_map(|v| v["name"].as_str()).collect();
    for ctr in &containers {
        for m in ctr["volumeMounts"]
            .as_vec()
            .map(|v| v.as_slice())
            .unwrap_or(&[])
        {
            assert!(vol_names.contains(&m["name"].as_str().unwrap()), "{m:?}");
        }
    }
    let cm_vol = volumes
        .iter()
        .find(|v| !v["configMap"].is_badvalue())
        .unwrap();
    let cm = one(docs, "ConfigMap");
    assert_eq!(cm_vol["configMap"]["name"], cm["metadata"]["name"]);
    let podinfo = volumes
        .iter()
        .find(|v| !v["downwardAPI"].is_badvalue())
        .expect("a downward-API volume (the uninstall mark)");
    assert_eq!(
        podinfo["downwardAPI"]["items"][0]["fieldRef"]["fieldPath"].as_str(),
        Some("metadata.annotations")
    );
    // the entrypoint and the preStop hook are the ConfigMap's scripts
    let mount_of = |vol: &str| {
        c["volumeMounts"]
            .as_vec()
            .unwrap()
            .iter()
            .find(|m| m["name"].as_str() == Some(vol))
            .and_then(|m| m["mountPath"].as_str())
            .unwrap()
            .to_string()
    };
    let scripts = mount_of(cm_vol["name"].as_str().unwrap());
    let cmd = strs(&c["command"]);
    assert_eq!(cmd, ["/bin/sh", &format!("{scripts}/entrypoint.sh")]);
    let pre = strs(&c["lifecycle"]["preStop"]["exec"]["command"]);
    assert_eq!(pre, ["/bin/sh", &format!("{scripts}/prestop.sh")]);
    for key in ["entrypoint.sh", "prestop.sh"] {
        assert!(
            cm["data"][key].as_str().unwrap().starts_with("#!/bin/sh"),
            "{key}"
        );
    }
    assert_eq!(
        env_of(c, "EGB_PODINFO").unwrap(),
        mount_of(podinfo["name"].as_str().unwrap())
    );

    // the agent's command line: scoped, dry run, pins where the unpin looks
    let args = strs(&c["args"]);
    for want in [
        "--path=/var/lib",
        "--path=/srv",
        "--dry-run",
        "--max-locks=8192",
        "--close-wait-timeout=60s",
        "--pin-dir=/sys/fs/bpf/eghostbuster",
        "--metrics-listen=$(POD_IP):29633",
    ] {
        assert!(args.iter().any(|a| a == want), "{want} not in {args:?}");
    }
    assert_eq!(
        env_of(c, "EGB_PIN_DIR").as_deref(),
        Some("/sys/fs/bpf/eghostbuster")
    );
    let pod_ip = c["env"]
        .as_vec()
        .unwrap()
        .iter()
        .find(|e| e["name"].as_str() == Some("POD_IP"))
        .expect("POD_IP, for $(POD_IP)");
    assert_eq!(
        pod_ip["valueFrom"]["fieldRef"]["fieldPath"].as_str(),
        Some("status.podIP")
    );

    // metrics: a port no common exporter uses by default, named for probes
    let port = c["ports"][0]["containerPort"].as_i64().unwrap();
    assert_eq!(c["ports"][0]["name"].as_str(), Some("metrics"));
    assert!(
        !(9090..=9999).contains(&port),
        "{port}: Prometheus' core and exporter ranges are allocated"
    );
    assert!(port < 32768, "{port}: in Linux's ephemeral range");
    for (probe, path) in [
        ("startupProbe", "/healthz"),
        ("livenessProbe", "/healthz"),
        ("readinessProbe", "/readyz"),
    ] {
        assert_eq!(c[probe]["httpGet"]["path"].as_str(), Some(path), "{probe}");
        assert_eq!(
            c[probe]["httpGet"]["port"].as_str(),
            Some("metrics"),
            "{probe}"
        );
    }

    // resources cover what was measured: idle, and --max-locks locks
    let req = bytes(c["resources"]["requests"]["memory"].as_str().unwrap());
    let lim = bytes(c["resources"]["limits"]["memory"].as_str().unwrap());
    assert!(
        req >= IDLE_BYTES,
        "request {req} below the idle {IDLE_BYTES}"
    );
    let worst = IDLE_BYTES + 8192 * PER_LOCK_BYTES;
    assert!(lim >= worst, "limit {lim} below {worst} (8192 locks)");
    assert!(
        c["resources"]["limits"]["cpu"].is_badvalue(),
        "no CPU limit"
    );

    assert_eq!(
        pod["nodeSelector"]["kubernetes.io/os"].as_str(),
        Some("linux")
    );
    assert_eq!(pod["tolerations"][0]["operator"].as_str(), Some("Exists"));

    // the uninstall hook: pre-delete only, with its own narrow rights
    let job = one(docs, "Job");
    assert_eq!(
        job["metadata"]["annotations"]["helm.sh/hook"].as_str(),
        Some("pre-delete")
    );
    let script = strs(&job["spec"]["template"]["spec"]["containers"][0]["command"]).join(" ");
    assert!(
        script.contains("eghostbuster/unpin-on-stop=true"),
        "{script}"
    );
    assert!(
        script.contains("app.kubernetes.io/instance=egb"),
        "{script}"
    );
    let role = one(docs, "Role");
    assert_eq!(strs(&role["rules"][0]["resources"]), ["pods"]);
    assert_eq!(strs(&role["rules"][0]["verbs"]), ["get", "list", "patch"]);
    let rb = one(docs, "RoleBinding");
    assert_eq!(
        rb["subjects"][0]["name"],
        job["spec"]["template"]["spec"]["serviceAccountName"]
    );
    for hooked in [role, rb, job] {
        assert!(hooked["metadata"]["annotations"]["helm.sh/hook"]
            .as_str()
            .is_some());
    }

    // --- sockets only, scoped to ports, acting, no hook, no probes ---
    let docs = r.cases["sockets-only"]
        .as_ref()
        .expect("sockets-only renders");
    check_objects(docs);
    let ds = one(docs, "DaemonSet");
    let c = agent_container(ds);
    let args = strs(&c["args"]);
    for want in [
        "--no-locks",
        "--port=8080",
        "--port=8443",
        "--exclude-port=22",
        "--close-wait-timeout=2m",
        "--metrics-listen=$(POD_IP):29700",
    ] {
        assert!(args.iter().any(|a| a == want), "{want} not in {args:?}");
    }
    assert!(
        !args
            .iter()
            .any(|a| a == "--dry-run" || a.starts_with("--max-locks")),
        "{args:?}"
    );
    assert!(c["livenessProbe"].is_badvalue() && c["readinessProbe"].is_badvalue());
    assert!(kind(docs, "Job").is_empty() && kind(docs, "Role").is_empty());
    let pod = &ds["spec"]["template"]["spec"];
    assert_eq!(pod["nodeSelector"]["role"].as_str(), Some("edge"));
    assert!(pod["tolerations"].is_badvalue());
}

/// The pod's entrypoint and preStop hook, run for real on this host with a
/// scoped agent: a stop without the uninstall mark (a rolling update) keeps
/// the pins for the next pod; with the mark (helm uninstall), the same
/// scripts remove them once the agent has exited with status 0.
#[test]
fn uninstall_unpins_and_rolling_update_keeps_pins() {
    let Some(py) = renderer() else { return };
    if !common::privileged() {
        return;
    }
    let r = render(&py, &[("ci", serde_json::json!({}))]);
    let docs = r.cases["ci"].as_ref().expect("ci renders");
    let cm = one(docs, "ConfigMap");
    let dir = common::test_dir("deploy-uninstall");
    let scripts = dir.path().join("pod");
    std::fs::create_dir(&scripts).unwrap();
    for key in ["entrypoint.sh", "prestop.sh"] {
        std::fs::write(scripts.join(key), cm["data"][key].as_str().unwrap()).unwrap();
    }

    for (case, annotations, unpinned) in [
        ("rolling-update", "kubernetes.io/config.seen=\"x\"\n", false),
        (
            "uninstall",
            "eghostbuster/unpin-on-stop=\"true\"\nkubernetes.io/config.seen=\"x\"\n",
            true,
        ),
    ] {
        let pins = PathBuf::from(format!(
            "/sys/fs/bpf/egb-deploy-{}-{case}",
            std::process::id()
        ));
        let scope = dir.path().join(case);
        let run = dir.path().join(format!("{case}-run"));
        let podinfo = dir.path().join(format!("{case}-podinfo"));
        for d in [&scope, &run, &podinfo] {
            std::fs::create_dir(d).unwrap();
        }
        std::fs::write(podinfo.join("annotations"), annotations).unwrap();
        let log = dir.path().join(format!("{case}.log"));
        let env = |cmd: &mut Command| {
            cmd.env("EGB_BIN", common::BIN)
                .env("EGB_NSENTER", "")
                .env("EGB_PIN_DIR", &pins)
                .env("EGB_RUN_DIR", &run)
                .env("EGB_PODINFO", &podinfo);
        };
        let mut entry = Command::new("/bin/sh");
        entry
            .arg(scripts.join("entrypoint.sh"))
            .args([
                "--path",
                scope.to_str().unwrap(),
                "--no-sockets",
                "--pin-dir",
            ])
            .arg(&pins)
            .arg("--status-file")
            .arg(dir.path().join(format!("{case}.status")))
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::options().append(true).open(&log).unwrap());
        env(&mut entry);
        let mut child = entry.spawn().unwrap();
        let ready = common::wait_for(Duration::from_secs(30), || {
            std::fs::read_to_string(&log)
                .unwrap_or_default()
                .contains("ready: ")
        });
        if !ready {
            let _ = child.kill();
            panic!(
                "{case}: no ready line: {}",
                std::fs::read_to_string(&log).unwrap()
            );
        }
        let versions = || {
            std::fs::read_dir(&pins)
                .map(|d| d.flatten().filter(|e| e.path().is_dir()).count())
                .unwrap_or(0)
        };
        assert_eq!(versions(), 1, "{case}: pinned before the stop");

        // the kubelet: preStop, then SIGTERM to the container's main process
        let mut pre = Command::new("/bin/sh");
        pre.arg(scripts.join("prestop.sh"));
        env(&mut pre);
        assert!(pre.status().unwrap().success(), "{case}: preStop failed");
        // SAFETY: a signal to our own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let status = child.wait().unwrap();
        let text = std::fs::read_to_string(&log).unwrap();
        // what the next pod finds
        let (left, dir_left) = (versions(), pins.exists());
        // clean up before asserting
        if pins.exists() {
            let _ = Command::new(common::BIN)
                .args(["unpin", "--pin-dir"])
                .arg(&pins)
                .status();
        }
        assert_eq!(status.code(), Some(0), "{case}: exit status; log:\n{text}");
        if unpinned {
            assert!(!dir_left && left == 0, "{case}: pins left behind");
            assert!(text.contains("helm uninstall: unpinning"), "{case}: {text}");
            assert!(
                text.contains(&format!("unpinned {}", pins.display())),
                "{case}: {text}"
            );
        } else {
            assert_eq!(left, 1, "{case}: the pins must stay for the next pod");
            assert!(text.contains("stay for the next pod"), "{case}: {text}");
            assert!(!text.contains("unpinned"), "{case}: {text}");
        }
        assert!(
            text.contains("SIGTERM: stopping"),
            "{case}: the agent got the SIGTERM: {text}"
        );
    }
}

/// Whether Docker sends PATH (relative to the context) under these
/// .dockerignore patterns: the last pattern that matches the path or one
/// of its parent directories decides; `!` lets through. A model of Docker's
/// rules (`*` does not cross `/`), enough for these patterns.
fn docker_sends(patterns: &[String], path: &str) -> bool {
    let mut sent = true;
    for p in patterns {
        let (negate, glob) = match p.strip_prefix('!') {
            Some(g) => (true, g),
            None => (false, p.as_str()),
        };
        let m = globset::GlobBuilder::new(glob.trim_start_matches('/'))
            .literal_separator(true)
            .build()
            .unwrap()
            .compile_matcher();
        let mut prefix = String::new();
        let mut hit = false;
        for part in path.split('/') {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(part);
            hit |= m.is_match(&prefix);
        }
        if hit {
            sent = negate;
        }
    }
    sent
}

#[test]
fn dockerignore_sends_only_what_the_dockerfile_copies() {
    let root = env!("CARGO_MANIFEST_DIR");
    let patterns: Vec<String> = std::fs::read_to_string(format!("{root}/.dockerignore"))
        .expect(".dockerignore")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect();
    let dockerfile = std::fs::read_to_string(format!("{root}/deploy/Dockerfile")).unwrap();
    let copies: Vec<String> = dockerfile
        .lines()
        .filter_map(|l| l.strip_prefix("COPY "))
        .map(|l| l.split_whitespace().next().unwrap().to_string())
        .collect();
    assert!(!copies.is_empty(), "the Dockerfile copies nothing?");
    for src in &copies {
        assert!(docker_sends(&patterns, src), "{src} is not sent");
    }
    for other in [
        "target/x86_64-unknown-linux-gnu/debug/eghostbuster",
        "target/x86_64-unknown-linux-gnu/release/deps/eghostbuster-0123",
        "target/debian/eghostbuster_0.1.0_amd64.deb",
        "bench/target/release/eghostbuster-bench",
        "src/main.rs",
        ".git/config",
        "Cargo.lock",
    ] {
        assert!(!docker_sends(&patterns, other), "{other} is sent");
    }
}
