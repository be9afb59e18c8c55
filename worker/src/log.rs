//! Task logs: collecting `setValue` output parameters, and streaming a log
//! to a reader (`StreamTaskLog`).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::time::Duration;

use orca_proto::v1::LogChunk;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::{mpsc, watch};
use tonic::Status;

use crate::attempts::Phase;

/// Longest log line inspected for `setValue`; longer lines are skipped.
const MAX_LINE: usize = 64 * 1024;
/// Total bytes of output parameters kept per attempt.
const MAX_OUT_PARAMS_BYTES: usize = 1024 * 1024;
/// Largest chunk sent by `StreamTaskLog`.
pub(crate) const MAX_CHUNK: usize = 64 * 1024;
/// How often a followed log is checked for new bytes.
const FOLLOW_POLL: Duration = Duration::from_millis(100);

/// Collects the output parameters printed by a task (`${setValue(k=v)}`),
/// reading the log line by line; the last value of a key wins. Memory is
/// bounded: overlong lines are skipped, and parameters stop being collected
/// past [`MAX_OUT_PARAMS_BYTES`].
/// Reads a log for shipping: whole when at most `cap` bytes, otherwise its
/// first and last `cap / 2` bytes around a marker line. Returns (bytes,
/// truncated, original size).
pub(crate) fn read_capped(log: &Path, cap: u64) -> std::io::Result<(Vec<u8>, bool, u64)> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = match std::fs::File::open(log) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), false, 0)),
        Err(e) => return Err(e),
    };
    let size = f.metadata()?.len();
    if size <= cap {
        let mut all = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        f.read_to_end(&mut all)?;
        return Ok((all, false, size));
    }
    let half = cap / 2;
    let mut head = vec![0u8; usize::try_from(half).unwrap_or(0)];
    f.read_exact(&mut head)?;
    f.seek(SeekFrom::End(-(i64::try_from(half).unwrap_or(0))))?;
    let mut tail = Vec::new();
    f.read_to_end(&mut tail)?;
    let mut out = head;
    out.extend_from_slice(
        format!(
            "\n[orca: log truncated: {} of {size} bytes omitted; head and tail kept]\n",
            size - 2 * half
        )
        .as_bytes(),
    );
    out.extend_from_slice(&tail);
    Ok((out, true, size))
}

pub(crate) fn collect_out_params(log: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let file = match std::fs::File::open(log) {
        Ok(f) => f,
        Err(e) => {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(path = %log.display(), error = %e, "cannot read task log for setValue");
            }
            return out;
        }
    };
    let mut reader = BufReader::new(file);
    let mut line = Vec::with_capacity(256);
    let mut total = 0usize;
    loop {
        line.clear();
        let n = match (&mut reader)
            .take(MAX_LINE as u64)
            .read_until(b'\n', &mut line)
        {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(path = %log.display(), error = %e, "task log read failed");
                break;
            }
        };
        if n == 0 {
            break;
        }
        if n == MAX_LINE && line.last() != Some(&b'\n') {
            // Overlong line: drop the rest of it.
            if skip_line(&mut reader).is_err() {
                break;
            }
            continue;
        }
        if !contains(&line, b"setValue") {
            continue;
        }
        let text = String::from_utf8_lossy(&line);
        for (k, v) in orca_common::params::parse_set_values(text.trim_end_matches(['\n', '\r'])) {
            total += k.len() + v.len();
            if total > MAX_OUT_PARAMS_BYTES {
                tracing::warn!(path = %log.display(), "output parameters exceed 1 MiB; the rest are dropped");
                return out;
            }
            out.insert(k, v);
        }
    }
    out
}

fn skip_line(reader: &mut impl BufRead) -> std::io::Result<()> {
    loop {
        let buf = reader.fill_buf()?;
        if buf.is_empty() {
            return Ok(());
        }
        if let Some(i) = buf.iter().position(|&b| b == b'\n') {
            reader.consume(i + 1);
            return Ok(());
        }
        let n = buf.len();
        reader.consume(n);
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Sends `path` from `offset` into `tx` in chunks; with `follow`, keeps
/// sending new bytes until `phase` is finished and the file is drained.
/// Ends quietly when the receiver goes away.
pub(crate) async fn stream_log(
    path: PathBuf,
    mut offset: u64,
    follow: bool,
    mut phase: watch::Receiver<Phase>,
    tx: mpsc::Sender<Result<LogChunk, Status>>,
) {
    let mut file: Option<tokio::fs::File> = None;
    let mut buf = vec![0u8; MAX_CHUNK];
    loop {
        // Read the phase before draining: bytes written before the end are
        // then certainly read by the drain below.
        let finished = *phase.borrow_and_update() == Phase::Finished;
        if file.is_none() {
            match tokio::fs::File::open(&path).await {
                Ok(mut f) => match f.seek(std::io::SeekFrom::Start(offset)).await {
                    Ok(_) => file = Some(f),
                    Err(e) => {
                        let _ = tx
                            .send(Err(Status::internal(format!(
                                "ORCA-WORKER-IO: seek {}: {e}",
                                path.display()
                            ))))
                            .await;
                        return;
                    }
                },
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    let _ = tx
                        .send(Err(Status::internal(format!(
                            "ORCA-WORKER-IO: open {}: {e}",
                            path.display()
                        ))))
                        .await;
                    return;
                }
            }
        }
        if let Some(f) = file.as_mut() {
            loop {
                let n = match f.read(&mut buf).await {
                    Ok(n) => n,
                    Err(e) => {
                        let _ = tx
                            .send(Err(Status::internal(format!(
                                "ORCA-WORKER-IO: read {}: {e}",
                                path.display()
                            ))))
                            .await;
                        return;
                    }
                };
                if n == 0 {
                    break;
                }
                let chunk = LogChunk {
                    offset,
                    data: buf[..n].to_vec(),
                };
                offset += n as u64;
                if tx.send(Ok(chunk)).await.is_err() {
                    return;
                }
            }
        }
        if !follow || finished {
            return;
        }
        tokio::select! {
            _ = tx.closed() => return,
            changed = phase.changed() => if changed.is_err() { return },
            _ = tokio::time::sleep(FOLLOW_POLL) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlong_lines_are_skipped_without_losing_the_next_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("task.log");
        let mut text = "x".repeat(MAX_LINE * 2);
        text.push_str("setValue\nplain line\n");
        std::fs::write(&p, text).unwrap();
        // No parser call happens for the skipped line; nothing is collected.
        assert!(collect_out_params(&p).is_empty());
        assert!(collect_out_params(&dir.path().join("missing.log")).is_empty());
    }
}

#[cfg(test)]
mod capped_tests {
    use super::read_capped;

    #[test]
    fn small_logs_ship_whole_and_large_ones_keep_head_and_tail() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("task.log");
        std::fs::write(&p, b"short").unwrap();
        assert_eq!(read_capped(&p, 100).unwrap(), (b"short".to_vec(), false, 5));
        let big: Vec<u8> = (0..1000u32).map(|i| b'a' + (i % 26) as u8).collect();
        std::fs::write(&p, &big).unwrap();
        let (data, truncated, size) = read_capped(&p, 100).unwrap();
        assert!(truncated);
        assert_eq!(size, 1000);
        assert!(data.starts_with(&big[..50]));
        assert!(data.ends_with(&big[950..]));
        let text = String::from_utf8_lossy(&data);
        assert!(text.contains("900 of 1000 bytes omitted"), "{text}");
        assert_eq!(
            read_capped(&dir.path().join("none"), 10).unwrap(),
            (vec![], false, 0)
        );
    }
}
