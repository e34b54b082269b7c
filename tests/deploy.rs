//! The Kubernetes manifest parses and asks for what the agent needs.

use yaml_rust2::{Yaml, YamlLoader};

#[test]
fn daemonset_manifest_parses_and_is_complete() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/kubernetes/daemonset.yaml"
    ))
    .unwrap();
    let docs = YamlLoader::load_from_str(&text).expect("valid YAML");
    assert_eq!(docs.len(), 1);
    let d = &docs[0];
    assert_eq!(d["kind"].as_str(), Some("DaemonSet"));
    assert_eq!(d["apiVersion"].as_str(), Some("apps/v1"));
    let pod = &d["spec"]["template"]["spec"];
    assert_eq!(pod["hostPID"].as_bool(), Some(true));
    let labels = &d["spec"]["template"]["metadata"]["labels"];
    assert_eq!(
        d["spec"]["selector"]["matchLabels"], *labels,
        "the selector must match the pod labels"
    );
    let c = &pod["containers"][0];
    assert_eq!(c["securityContext"]["privileged"].as_bool(), Some(true));
    let cmd: Vec<&str> = c["command"]
        .as_vec()
        .expect("a command")
        .iter()
        .filter_map(Yaml::as_str)
        .collect();
    assert!(cmd.contains(&"run"), "{cmd:?}");
    assert!(
        cmd.iter().any(|a| a.starts_with("--path=")),
        "unscoped: {cmd:?}"
    );
    // every volume mounted exists
    let vols: Vec<&str> = pod["volumes"]
        .as_vec()
        .unwrap()
        .iter()
        .filter_map(|v| v["name"].as_str())
        .collect();
    for ctr in pod["containers"]
        .as_vec()
        .unwrap()
        .iter()
        .chain(pod["initContainers"].as_vec().unwrap())
    {
        for m in ctr["volumeMounts"]
            .as_vec()
            .map(|v| v.as_slice())
            .unwrap_or(&[])
        {
            assert!(vols.contains(&m["name"].as_str().unwrap()), "{m:?}");
        }
    }
}
