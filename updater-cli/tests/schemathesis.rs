//! The JSON API of `updater serve` fuzzed against its own OpenAPI document
//! by `schemathesis` (PyPI, installed by `.ci/run`): generated requests to
//! every operation — valid and invalid — must never get a 5xx nor a
//! response that violates the document.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;

const TOKEN: &str = "schemathesis-token";

fn get(base: &str, path: &str) -> String {
    let address = base.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response.split_once("\r\n\r\n").unwrap().1.to_string()
}

#[test]
fn generated_requests_get_no_server_error_and_no_schema_violation() {
    let program = ["schemathesis", "st"]
        .into_iter()
        .find(|p| updater_testkit::services::has_program(p));
    let Some(program) = program else {
        updater_testkit::services::unavailable(
            "the API fuzz test",
            "needs schemathesis (pip install schemathesis)",
        );
        return;
    };
    let f = support::fixture();
    f.server.publish("1.1.0", true);
    f.write_config(&format!(
        "\n[web]\napi_tokens = [{{ name = \"schemathesis\", sha256 = \"{}\" }}]\n",
        updater_web::auth::ApiToken::digest(TOKEN)
    ));
    let served = f.serve(&[]);
    let document = f.dir.path().join("openapi.json");
    std::fs::write(&document, get(&served.base, "/api/openapi.json")).unwrap();
    let output = std::process::Command::new(program)
        .arg("run")
        .arg(&document)
        .args(["--url", &served.base])
        .args(["-H", &format!("Authorization: Bearer {TOKEN}")])
        .args([
            "--checks",
            "not_a_server_error,response_schema_conformance,content_type_conformance",
        ])
        .args(["--max-examples", "25", "--request-timeout", "60"])
        .args(["--generation-deterministic", "--no-color"])
        .env("SCHEMATHESIS_HOOKS", "")
        .current_dir(f.dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let (code, _) = served.stop();
    assert!(
        output.status.success(),
        "schemathesis found problems:\n{stdout}\n{stderr}"
    );
    assert_eq!(code, 0);
}
