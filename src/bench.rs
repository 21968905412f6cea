//! `seedlog bench log`: append and read throughput of the partition log,
//! on the in-memory disk and on real files, measured the way the broker
//! uses the log (whole v2 batches validated and stamped, fsync in groups).

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use seedlog_core::batch::build_batch;
use seedlog_core::log::{LogConfig, PartitionLog};
use seedlog_core::storage::{MemoryStorage, Storage};
use seedlog_core::Instant;
use seedlog_net::FileStorage;
use std::path::PathBuf;

#[derive(Debug, clap::Subcommand)]
pub enum BenchCommand {
    /// Partition log append and read throughput, in memory and on files.
    Log(BenchArgs),
    /// A fixed in-process produce (and fetch) workload through the core and
    /// the wire codec, for instruction counts under callgrind.
    ProducePath(crate::bench_path::ProducePathArgs),
}

pub fn run(command: BenchCommand) -> anyhow::Result<()> {
    match command {
        BenchCommand::Log(args) => run_log(args),
        BenchCommand::ProducePath(args) => crate::bench_path::run_produce_path(args),
    }
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Megabytes to append per run.
    #[arg(long, default_value_t = 512)]
    size_mb: u64,
    /// Bytes per record value.
    #[arg(long, default_value_t = 1024)]
    record_bytes: usize,
    /// Records per batch (librdkafka's batches are typically 16 KiB-1 MiB).
    #[arg(long, default_value_t = 16)]
    records_per_batch: usize,
    /// fsync after this many megabytes appended (group commit); 0: only at the end.
    #[arg(long, default_value_t = 1)]
    sync_every_mb: u64,
    /// Directory for the file runs; removed and recreated.
    #[arg(long, default_value = "./seedlog-bench")]
    dir: PathBuf,
}

struct Measurement {
    append_mb_per_s: f64,
    read_mb_per_s: f64,
}

fn run_log(args: BenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.size_mb > 0 && args.record_bytes > 0 && args.records_per_batch > 0,
        "sizes must be positive"
    );
    let value = vec![0x5au8; args.record_bytes];
    let records: Vec<_> = (0..args.records_per_batch)
        .map(|_| (None, Some(value.as_slice())))
        .collect();
    let batch = build_batch(&records, 1_700_000_000_000);
    let batches = (args.size_mb << 20).div_ceil(batch.len() as u64);
    println!(
        "log bench: {batches} batches of {} B ({} records of {} B), {} MB per run",
        batch.len(),
        args.records_per_batch,
        args.record_bytes,
        args.size_mb
    );

    let memory = measure("memory", MemoryStorage::new(), &batch, batches, 0)?;
    let _ = std::fs::remove_dir_all(&args.dir);
    let storage =
        FileStorage::open(&args.dir).with_context(|| format!("opening {}", args.dir.display()))?;
    let files = measure("files", storage, &batch, batches, args.sync_every_mb << 20)?;
    let _ = std::fs::remove_dir_all(&args.dir);

    println!("{:<8} {:>14} {:>14}", "storage", "append MB/s", "read MB/s");
    for (name, m) in [("memory", memory), ("files", files)] {
        println!(
            "{name:<8} {:>14.0} {:>14.0}",
            m.append_mb_per_s, m.read_mb_per_s
        );
    }
    println!(
        "(files: fsync every {} MB; reads come from the page cache)",
        args.sync_every_mb
    );
    Ok(())
}

fn measure<S: Storage>(
    name: &str,
    mut storage: S,
    batch: &[u8],
    batches: u64,
    sync_every_bytes: u64,
) -> anyhow::Result<Measurement> {
    let config = LogConfig {
        segment_bytes: 256 << 20,
        ..LogConfig::default()
    };
    let now = Instant::from_millis(1_700_000_000_000);
    let (mut log, _) = PartitionLog::open(&mut storage, "bench-0", config, now)?;
    let bar = ProgressBar::new(batches).with_style(
        ProgressStyle::with_template("{msg:>14} {bar:40} {pos}/{len}").expect("template"),
    );
    bar.set_message(format!("{name} append"));

    let started = std::time::Instant::now();
    let mut unsynced_bytes = 0u64;
    for _ in 0..batches {
        log.append_as_leader(&mut storage, batch, 0, now)?;
        unsynced_bytes += batch.len() as u64;
        if sync_every_bytes > 0 && unsynced_bytes >= sync_every_bytes {
            sync(&mut storage, &mut log)?;
            unsynced_bytes = 0;
        }
        bar.inc(1);
    }
    sync(&mut storage, &mut log)?;
    let append_secs = started.elapsed().as_secs_f64();
    let total_bytes = log.size_bytes();
    bar.finish_and_clear();

    let started = std::time::Instant::now();
    let mut offset = log.log_start_offset();
    let mut read_bytes = 0u64;
    while offset < log.log_end_offset() {
        let read = log.read(&mut storage, offset, 1 << 20, log.log_end_offset())?;
        anyhow::ensure!(
            !read.records.is_empty(),
            "read made no progress at offset {offset}"
        );
        read_bytes += read.records.len() as u64;
        offset = last_offset_after(&read.records);
    }
    let read_secs = started.elapsed().as_secs_f64();
    anyhow::ensure!(
        read_bytes == total_bytes,
        "read {read_bytes} of {total_bytes} bytes"
    );
    let mb = total_bytes as f64 / (1 << 20) as f64;
    Ok(Measurement {
        append_mb_per_s: mb / append_secs,
        read_mb_per_s: mb / read_secs,
    })
}

fn sync<S: Storage>(storage: &mut S, log: &mut PartitionLog) -> anyhow::Result<()> {
    let end = log.log_end_offset();
    for path in log.unsynced_paths() {
        storage.sync(&path)?;
    }
    log.mark_synced(end);
    Ok(())
}

/// The offset after the last batch in `records` (whole batches).
fn last_offset_after(records: &[u8]) -> i64 {
    let mut next = 0;
    for (_, header) in seedlog_core::batch::BatchIter::new(records) {
        next = header.next_offset();
    }
    next
}
