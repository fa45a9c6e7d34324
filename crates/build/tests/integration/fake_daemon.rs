//! `build_image` against a scripted fake daemon on a unix socket, for what the real daemon
//! does only sometimes: a line split from its newline across messages, and bollard 0.21.1's
//! spurious framing error when a message's `}` and its `\r\n` arrive in different reads.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::time::Duration;

use build::{BuildEvent, BuildOptions, Error};
use common::{build_collecting, context};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};

const IMAGE_ID: &str = "sha256:71c5f44586ba0000000000000000000000000000000000000000000000000000";

/// How the fake answers `POST /build`: pieces written with a pause between them so that
/// each arrives in its own read.
type Script = Vec<String>;

async fn read_request(stream: &mut UnixStream) -> String {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 64 * 1024];
    loop {
        let n = stream.read(&mut chunk).await.unwrap();
        if n == 0 {
            break;
        }
        buffer.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buffer);
        let Some(head_end) = text.find("\r\n\r\n") else {
            continue;
        };
        let head = text[..head_end].to_ascii_lowercase();
        if head.contains("transfer-encoding: chunked") {
            if text.ends_with("0\r\n\r\n") {
                break;
            }
        } else {
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if buffer.len() >= head_end + 4 + length {
                break;
            }
        }
    }
    String::from_utf8_lossy(&buffer).into_owned()
}

async fn respond(stream: &mut UnixStream, body_pieces: &[String]) {
    let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n";
    stream.write_all(head.as_bytes()).await.unwrap();
    for piece in body_pieces {
        stream.write_all(piece.as_bytes()).await.unwrap();
        stream.flush().await.unwrap();
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    let _ = stream.shutdown().await;
}

/// Serves `/version`, `/images/<id>/json` and `POST /build` (with `script`) until dropped.
fn serve(listener: UnixListener, script: Script) {
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let script = script.clone();
            tokio::spawn(async move {
                let request = read_request(&mut stream).await;
                let line = request.lines().next().unwrap_or_default().to_owned();
                if line.contains("/version") {
                    let version = r#"{"ApiVersion":"1.41","Version":"20.10.24","MinAPIVersion":"1.12","Os":"linux","Arch":"amd64"}"#;
                    respond(&mut stream, &[version.to_owned()]).await;
                } else if line.contains("/images/") {
                    respond(
                        &mut stream,
                        &[format!(r#"{{"Id":"{IMAGE_ID}","RepoDigests":[]}}"#)],
                    )
                    .await;
                } else if line.starts_with("POST") && line.contains("/build") {
                    respond(&mut stream, &script).await;
                } else {
                    let _ = stream.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").await;
                }
            });
        }
    });
}

async fn build_against(script: Script) -> (Result<build::Built, Error>, Vec<BuildEvent>) {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("fake.sock");
    serve(UnixListener::bind(&socket).unwrap(), script);
    let docker = build::connect(Some(&format!("unix://{}", socket.display())))
        .await
        .unwrap();
    build_collecting(
        &docker,
        context(&[("Dockerfile", "FROM scratch\n")]),
        &BuildOptions::default(),
    )
    .await
}

fn stream_message(text: &str) -> String {
    format!("{}\r\n", serde_json::json!({ "stream": text }))
}

#[tokio::test]
async fn framing_error_after_the_image_id_is_a_success() {
    let aux = serde_json::json!({"aux": {"ID": IMAGE_ID}}).to_string();
    let script = vec![
        // A step line whose newline comes in the next message.
        stream_message("Step 1/1 : FROM scratch"),
        stream_message("\n"),
        stream_message(" ---> 71c5f44586ba\n"),
        // `}` and `\r\n` in separate reads: bollard 0.21.1 then ends the stream with
        // "bytes remaining on stream".
        aux,
        "\r\n".to_owned(),
    ];
    let (result, events) = build_against(script).await;
    let built = result.unwrap();
    assert_eq!(built.image_id, IMAGE_ID);
    assert_eq!(built.layers, ["71c5f44586ba"]);
    assert_eq!(
        events,
        vec![
            BuildEvent::Step {
                index: 1,
                total: 1,
                instruction: "FROM scratch".into()
            },
            BuildEvent::Output {
                line: " ---> 71c5f44586ba".into()
            },
            BuildEvent::Layer {
                id: "71c5f44586ba".into()
            },
        ]
    );
}

#[tokio::test]
async fn framing_error_before_any_image_id_is_an_error() {
    let script = vec![
        stream_message("Step 1/1 : FROM scratch\n"),
        r#"{"stream":"half"}"#.to_owned(),
        "\r\n".to_owned(),
    ];
    let (result, _) = build_against(script).await;
    let err = result.unwrap_err();
    assert!(matches!(err, Error::Docker { .. }), "{err:?}");
}

#[tokio::test]
async fn an_error_message_fails_the_build_with_the_step_and_output() {
    let script = vec![
        stream_message("Step 1/2 : FROM scratch\n"),
        stream_message(" ---> 71c5f44586ba\n"),
        stream_message("Step 2/2 : RUN false\n"),
        stream_message(" ---> Running in 2730e2762325\n"),
        stream_message("some output"),
        stream_message("\n"),
        format!(
            "{}\r\n",
            serde_json::json!({"errorDetail": {"code": 1, "message": "The command '/bin/sh -c false' returned a non-zero code: 1"}, "error": "The command '/bin/sh -c false' returned a non-zero code: 1"})
        ),
    ];
    let (result, events) = build_against(script).await;
    match result.unwrap_err() {
        Error::BuildFailed {
            message,
            step,
            output,
            layers,
        } => {
            assert_eq!(
                message,
                "The command '/bin/sh -c false' returned a non-zero code: 1"
            );
            assert_eq!(step.as_deref(), Some("Step 2/2 : RUN false"));
            assert_eq!(output, [" ---> Running in 2730e2762325", "some output"]);
            assert_eq!(layers, ["71c5f44586ba"]);
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(events.last(), Some(BuildEvent::Error { .. })));
}
