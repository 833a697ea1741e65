//! docker-compose.yml cannot be run here (no Docker engine), so it is kept
//! right by construction: Debian's docker-compose parses and checks it, and
//! it must configure the services with the same variables, ports and images
//! as the native scripts.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `METERLINE_*` names in `text`.
fn meterline_vars(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("METERLINE_") {
        let name: String = rest[i..].chars().take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_').collect();
        if name.len() > "METERLINE_".len() {
            out.insert(name);
        }
        rest = &rest[i + 10..];
    }
    out
}

fn compose_config() -> String {
    let out = match Command::new("docker-compose").arg("-f").arg(repo().join("docker-compose.yml")).arg("config").output() {
        Ok(out) => out,
        // Not a skip: the file would go unchecked.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            panic!("docker-compose is not installed: run scripts/stack.sh up (it installs Debian's docker-compose), or scripts/test.sh")
        }
        Err(e) => panic!("running docker-compose: {e}"),
    };
    assert!(out.status.success(), "docker-compose config failed:\n{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn docker_compose_accepts_the_file() {
    let config = compose_config();
    for service in ["kafka:", "clickhouse:", "postgres:", "init:", "rollup:", "budget:", "notify:", "gateway:", "rag:"] {
        assert!(config.contains(service), "service {service} missing");
    }
}

#[test]
fn compose_and_native_scripts_use_the_same_variables() {
    let lib = std::fs::read_to_string(repo().join("scripts/lib.sh")).unwrap();
    let native: BTreeSet<String> = meterline_vars(&lib)
        .into_iter()
        // Where the scripts keep tools and state; containers have their own.
        .filter(|v| v != "METERLINE_HOME")
        .collect();
    let config = compose_config();
    // The rollup service's block of the normalised config: its lines up to
    // the next service at the same indentation.
    let rollup: String = config
        .lines()
        .skip_while(|l| *l != "  rollup:")
        .enumerate()
        .take_while(|(i, l)| *i == 0 || l.starts_with("   ") || !l.starts_with("  "))
        .map(|(_, l)| format!("{l}\n"))
        .collect();
    assert!(!rollup.is_empty(), "rollup service");
    let rollup_env = meterline_vars(&rollup);
    for var in &native {
        assert!(rollup_env.contains(var), "{var} is set by scripts/lib.sh but not in docker-compose.yml's rollup service");
    }
    let compose = meterline_vars(&std::fs::read_to_string(repo().join("docker-compose.yml")).unwrap());
    for var in &compose {
        assert!(native.contains(var), "{var} is in docker-compose.yml but has no default in scripts/lib.sh");
    }
}

#[test]
fn compose_publishes_the_ports_and_versions_the_scripts_use() {
    let file = std::fs::read_to_string(repo().join("docker-compose.yml")).unwrap();
    for port in [
        "\"9092:9092\"",
        "\"8123:8123\"",
        "\"5432:5432\"",
        "\"9464:9464\"",
        "\"9465:9465\"",
        "\"9466:9466\"",
        "\"8080:8080\"",
        "\"8081:8081\"",
    ] {
        assert!(file.contains(port), "port {port} not published");
    }
    let lib = std::fs::read_to_string(repo().join("scripts/lib.sh")).unwrap();
    for default in [
        "127.0.0.1:9092",
        "http://127.0.0.1:8123",
        "127.0.0.1:5432/meterline",
        "127.0.0.1:9464",
        "127.0.0.1:9465",
        "127.0.0.1:9466",
        "127.0.0.1:8080",
        "127.0.0.1:8081",
    ] {
        assert!(lib.contains(default), "scripts/lib.sh default {default} changed; update docker-compose.yml too");
    }
    assert!(file.contains("image: apache/kafka:"), "Apache Kafka in KRaft mode");
    assert!(file.contains("KAFKA_PROCESS_ROLES: broker,controller"), "KRaft");
    assert!(file.contains("image: clickhouse/clickhouse-server:24"), "ClickHouse 24+");
    assert!(file.contains("image: postgres:15"), "the Postgres major version Debian 12 ships");
}

/// `: "${METERLINE_X:=value}"` lines of scripts/lib.sh, as (name, value).
fn lib_sh_defaults() -> Vec<(String, String)> {
    let lib = std::fs::read_to_string(repo().join("scripts/lib.sh")).unwrap();
    lib.lines()
        .filter_map(|l| l.trim().strip_prefix(": \"${")?.strip_suffix("}\""))
        .filter_map(|assignment| {
            let (name, value) = assignment.split_once(":=")?;
            Some((name.to_owned(), value.to_owned()))
        })
        .collect()
}

#[test]
fn the_rust_defaults_and_the_scripts_defaults_agree() {
    let scripts = lib_sh_defaults();
    assert!(scripts.len() > 10, "scripts/lib.sh's defaults were not found: {scripts:?}");
    for (name, default) in meterline_core::config::defaults::ALL {
        let Some((_, script)) = scripts.iter().find(|(n, _)| n == name) else {
            panic!("{name} has a Rust default ({default:?}) but none in scripts/lib.sh");
        };
        assert_eq!(script, default, "{name}: scripts/lib.sh and meterline_core::config::defaults differ");
    }
    // What the scripts set for the services must have a Rust default too
    // (the scripts' own settings and the demo's token secret excepted).
    for (name, _) in &scripts {
        let scripts_only = ["METERLINE_HOME", "METERLINE_JWT_SECRET"].contains(&name.as_str());
        assert!(
            scripts_only || meterline_core::config::defaults::ALL.iter().any(|(n, _)| n == name),
            "{name} has a default in scripts/lib.sh but none in meterline_core::config::defaults"
        );
    }
}
