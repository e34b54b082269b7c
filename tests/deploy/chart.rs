//! The Helm chart as the deploy tests see it: rendered and linted by
//! Helm's own engine (scripts/helm-render.py, through the helm-python-sdk
//! venv scripts/deps.sh installs), and the YAML helpers the checks use.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use yaml_rust2::{Yaml, YamlLoader};

pub const CHART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/helm/eghostbuster");
pub const CI_VALUES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/deploy/helm/eghostbuster/ci/test-values.yaml"
);
pub const RENDER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/helm-render.py");
pub const DEFAULT_VENV: &str = "/opt/eghostbuster-test/helm";

/// The renderer's Python, or None (skip; a failure under REQUIRE_BPF).
pub fn renderer() -> Option<PathBuf> {
    let venv = std::env::var("EGHOSTBUSTER_HELM_VENV").unwrap_or_else(|_| DEFAULT_VENV.into());
    let py = Path::new(&venv).join("bin/python");
    if py.exists() {
        return Some(py);
    }
    if std::env::var("EGHOSTBUSTER_REQUIRE_BPF").as_deref() == Ok("1") {
        panic!(
            "the Helm renderer is missing ({}): run scripts/deps.sh",
            py.display()
        );
    }
    eprintln!(
        "skipped: no Helm renderer at {} (scripts/deps.sh installs it)",
        py.display()
    );
    None
}

pub struct Rendered {
    pub lint: serde_json::Value,
    pub cases: BTreeMap<String, Result<Vec<Yaml>, String>>,
}

/// Lint the chart with the CI values and render every case: (name,
/// values as JSON); each case starts from ci/test-values.yaml unless its
/// name starts with "bare".
pub fn render(py: &Path, cases: &[(&str, serde_json::Value)]) -> Rendered {
    let mut req = serde_json::json!({
        "chart": CHART,
        "lint": {"values_file": CI_VALUES},
        "cases": {},
    });
    for (name, values) in cases {
        let mut case = serde_json::json!({ "values": values });
        if !name.starts_with("bare") {
            case["values_file"] = CI_VALUES.into();
        }
        req["cases"][name] = case;
    }
    let mut child = Command::new(py)
        .arg(RENDER)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the Helm renderer");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(req.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "renderer failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("renderer JSON");
    let mut rendered = BTreeMap::new();
    for (name, case) in doc["cases"].as_object().unwrap() {
        let r = match case.get("error") {
            Some(e) => Err(e.as_str().unwrap_or_default().to_string()),
            None => {
                let mut docs = Vec::new();
                for (path, text) in case["manifests"].as_object().unwrap() {
                    if path.ends_with("NOTES.txt") {
                        continue;
                    }
                    let parsed = YamlLoader::load_from_str(text.as_str().unwrap())
                        .unwrap_or_else(|e| panic!("{name}: {path} is not YAML: {e}"));
                    docs.extend(parsed.into_iter().filter(|d| !d.is_null()));
                }
                Ok(docs)
            }
        };
        rendered.insert(name.clone(), r);
    }
    Rendered {
        lint: doc["lint"].clone(),
        cases: rendered,
    }
}

pub fn kind<'a>(docs: &'a [Yaml], kind: &str) -> Vec<&'a Yaml> {
    docs.iter()
        .filter(|d| d["kind"].as_str() == Some(kind))
        .collect()
}

pub fn one<'a>(docs: &'a [Yaml], k: &str) -> &'a Yaml {
    let v = kind(docs, k);
    assert_eq!(v.len(), 1, "expected one {k}, got {}", v.len());
    v[0]
}

pub fn strs(y: &Yaml) -> Vec<String> {
    y.as_vec()
        .map(|v| {
            v.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// Kubernetes quantity (Ki, Mi, Gi) in bytes.
pub fn bytes(q: &str) -> u64 {
    let (n, mult) = if let Some(n) = q.strip_suffix("Gi") {
        (n, 1 << 30)
    } else if let Some(n) = q.strip_suffix("Mi") {
        (n, 1 << 20)
    } else if let Some(n) = q.strip_suffix("Ki") {
        (n, 1 << 10)
    } else {
        (q, 1)
    };
    n.parse::<u64>().unwrap_or_else(|_| panic!("quantity {q}")) * mult
}

pub fn agent_container(ds: &Yaml) -> &Yaml {
    ds["spec"]["template"]["spec"]["containers"]
        .as_vec()
        .unwrap()
        .iter()
        .find(|c| c["name"].as_str() == Some("eghostbuster"))
        .expect("the agent container")
}

pub fn env_of(c: &Yaml, name: &str) -> Option<String> {
    c["env"]
        .as_vec()?
        .iter()
        .find(|e| e["name"].as_str() == Some(name))
        .and_then(|e| e["value"].as_str().map(String::from))
}

/// Every document: the fields every object needs, namespaced where it
/// must be, labels as strings.
pub fn check_objects(docs: &[Yaml]) {
    assert!(!docs.is_empty());
    for d in docs {
        let k = d["kind"].as_str().expect("kind");
        assert!(d["apiVersion"].as_str().is_some(), "{k}: apiVersion");
        let name = d["metadata"]["name"].as_str().expect("metadata.name");
        assert!(name.len() <= 63, "{k} {name}: name too long");
        assert_eq!(
            d["metadata"]["namespace"].as_str(),
            Some("kube-system"),
            "{k} {name}: namespace"
        );
        if let Some(labels) = d["metadata"]["labels"].as_hash() {
            for (lk, lv) in labels {
                assert!(
                    lv.as_str().is_some(),
                    "{k} {name}: label {lk:?} is not a string"
                );
            }
        }
    }
}
