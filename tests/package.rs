//! The container package, checked without a container engine (none runs on the build machines):
//! `scripts/check-package.sh` lints the Dockerfile (hadolint) and validates docker-compose.yml
//! against the Compose specification's JSON schema and its Prometheus configuration with
//! promtool; this test runs it and then checks what a platform team relies on — a multi-stage
//! build, a non-root runtime user, a health check on `/healthz`, Kafka in KRaft mode with the
//! topics, an S3-compatible store with its bucket, several pixlake replicas on it, Prometheus
//! and Grafana provisioned from `monitoring/`, and every file the compose file mounts present.

use std::path::Path;
use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn compose() -> serde_json::Value {
    let text = std::fs::read_to_string(Path::new(ROOT).join("docker-compose.yml")).unwrap();
    serde_saphyr::from_str(&text).unwrap()
}

#[test]
fn the_linters_accept_the_dockerfile_and_the_compose_file() {
    let out = Command::new(Path::new(ROOT).join("scripts/check-package.sh")).output().unwrap();
    assert!(out.status.success(), "{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
}

#[test]
fn the_image_is_multi_stage_runs_as_a_user_and_checks_its_health() {
    let text = std::fs::read_to_string(Path::new(ROOT).join("Dockerfile")).unwrap();
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.starts_with('#')).collect();
    let froms: Vec<usize> = lines.iter().enumerate().filter(|(_, l)| l.starts_with("FROM ")).map(|(i, _)| i).collect();
    assert!(froms.len() >= 2, "a build stage and a runtime stage");
    let runtime = &lines[*froms.last().unwrap()..];
    assert!(runtime.iter().any(|l| l.starts_with("COPY --from=build ")), "the runtime stage takes only the binary");
    assert!(!runtime.iter().any(|l| l.contains("cargo ")), "no toolchain in the runtime stage");
    let user = runtime.iter().rfind(|l| l.starts_with("USER ")).expect("a USER in the runtime stage");
    assert!(!["USER root", "USER 0"].contains(user), "{user}");
    let health = runtime.iter().position(|l| l.starts_with("HEALTHCHECK ")).expect("a HEALTHCHECK");
    assert!(runtime[health..health + 2].join(" ").contains("/healthz"), "the health check asks /healthz");
    assert!(runtime.iter().any(|l| l == &"EXPOSE 9898"));
    assert!(runtime.iter().any(|l| l.contains("PIXLAKE__TELEMETRY__LISTEN=0.0.0.0:9898")), "listens beyond loopback");
}

#[test]
fn the_compose_file_runs_the_whole_platform() {
    let c = compose();
    let services = c["services"].as_object().unwrap();
    let kafka = &services["kafka"];
    assert!(kafka["image"].as_str().unwrap().starts_with("apache/kafka:"), "the official Kafka image");
    assert_eq!(kafka["environment"]["KAFKA_PROCESS_ROLES"], "broker,controller", "KRaft, no ZooKeeper");
    let topics = services["topics"]["command"].as_array().unwrap()[0].as_str().unwrap();
    for t in ["pix.payments", "pix.receipts", "pix.refunds", "pix.dlq"] {
        assert!(topics.contains(t), "topic {t} created");
    }
    assert!(services["bucket"]["command"][0].as_str().unwrap().contains("mc mb"), "the bucket is created");
    let pixlake = &services["pixlake"];
    assert!(pixlake["deploy"]["replicas"].as_u64().unwrap() >= 2, "several instances in one group");
    assert!(pixlake["environment"]["PIXLAKE__WAREHOUSE__ROOT"].as_str().unwrap().starts_with("s3://"));
    assert_eq!(pixlake["environment"]["PIXLAKE__WAREHOUSE__ENDPOINT"], "http://minio:9000");
    assert!(
        pixlake["environment"].get("PIXLAKE__WAREHOUSE__SECRET_ACCESS_KEY").is_none(),
        "the secret comes from a file, not the environment"
    );
    for needed in ["topics", "bucket"] {
        assert_eq!(pixlake["depends_on"][needed]["condition"], "service_completed_successfully");
    }
    assert!(pixlake["stop_grace_period"].as_str().is_some(), "room for the shutdown commit");
    // Every file mounted from the repository is there.
    for (name, service) in services {
        for volume in service["volumes"].as_array().into_iter().flatten() {
            let source = volume.as_str().unwrap().split(':').next().unwrap();
            if source.starts_with("./") {
                assert!(Path::new(ROOT).join(source).exists(), "{name} mounts {source}, which does not exist");
            }
        }
    }
    for (name, secret) in c["secrets"].as_object().unwrap() {
        let file = secret["file"].as_str().unwrap();
        assert!(Path::new(ROOT).join(file).exists(), "secret {name}: {file}");
    }
    let grafana = services["grafana"]["volumes"].to_string();
    assert!(grafana.contains("monitoring/grafana/provisioning") && grafana.contains("pixlake.json"), "{grafana}");
    let prometheus = services["prometheus"]["volumes"].to_string();
    assert!(prometheus.contains("monitoring/alerts.yml"), "{prometheus}");
}
