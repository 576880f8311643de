//! The writer of the audit log. Each record must be on disk before its call is answered, and a
//! disk sync per record would cap mutating calls at a few thousand per second (and hold the
//! database for everyone meanwhile). So one thread commits whatever records are waiting in a
//! single transaction, one sync for the lot, and then releases every call that was waiting.

use std::sync::Arc;
use std::sync::mpsc;

use tokio::sync::oneshot;

use crate::store::{AuditRecord, Db};

/// The most records one transaction takes.
const MAX_BATCH: usize = 512;

/// A record to write (none: only a flush), and who waits for it to be durable.
type Pending = (Option<AuditRecord>, oneshot::Sender<()>);

pub struct AuditLog {
    queue: mpsc::Sender<Pending>,
}

impl AuditLog {
    pub fn start(db: Arc<Db>) -> AuditLog {
        let (queue, waiting) = mpsc::channel::<Pending>();
        std::thread::Builder::new()
            .name("plughost-audit".into())
            .spawn(move || {
                while let Ok(first) = waiting.recv() {
                    let mut batch = vec![first];
                    batch.extend(waiting.try_iter().take(MAX_BATCH - 1));
                    let (records, done): (Vec<Option<AuditRecord>>, Vec<_>) = batch.into_iter().unzip();
                    let records: Vec<AuditRecord> = records.into_iter().flatten().collect();
                    if !records.is_empty()
                        && let Err(error) = db.append_audit(&records)
                    {
                        tracing::error!(%error, records = records.len(), "cannot write audit records");
                    }
                    for done in done {
                        let _ = done.send(());
                    }
                }
            })
            .expect("spawning the audit thread at start-up");
        AuditLog { queue }
    }

    /// Writes `record` and waits until it is durable (or could not be written, which is logged:
    /// the change it records has happened either way).
    pub async fn write(&self, record: AuditRecord) {
        self.enqueue(Some(record)).await;
    }

    /// Waits until every record queued before this call is durable: the thread takes its queue
    /// in order, so once this empty entry's batch is committed, so is everything ahead of it.
    pub async fn flush(&self) {
        self.enqueue(None).await;
    }

    async fn enqueue(&self, record: Option<AuditRecord>) {
        let (done, written) = oneshot::channel();
        if self.queue.send((record, done)).is_err() {
            tracing::error!("the audit thread is gone; the audit log is not written");
            return;
        }
        let _ = written.await;
    }
}
