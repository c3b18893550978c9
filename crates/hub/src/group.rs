//! Group commit: operations that arrive while a batch is being written
//! are written together by the next batch, each caller awaiting its own
//! result.
//!
//! Nothing waits to fill a batch: the first caller starts a writer at
//! once, and whoever comes while it writes joins the next batch. One at a
//! time, a batch is one operation (no added latency); under load, the
//! batches grow with it, and the fixed cost of a transaction (the ledger
//! lock, the round trips, the commit's flush) is shared.

use std::future::Future;
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

/// A queue of operations `I`, each answered with an `O`.
pub struct Group<I, O> {
    queue: Mutex<Queue<I, O>>,
    max: usize,
    writers: usize,
}

struct Queue<I, O> {
    waiting: Vec<(I, oneshot::Sender<O>)>,
    /// How many writers are running: each takes what is waiting when it
    /// is done with its batch.
    writing: usize,
}

impl<I, O> Default for Group<I, O> {
    fn default() -> Self {
        Self::new(256, 1)
    }
}

impl<I, O> Group<I, O> {
    /// A group writing at most `max` operations a batch, with at most
    /// `writers` batches in flight (more than one where a batch waits on
    /// something else than the database, such as a holder's node).
    pub fn new(max: usize, writers: usize) -> Self {
        Self {
            queue: Mutex::new(Queue {
                waiting: Vec::new(),
                writing: 0,
            }),
            max: max.max(1),
            writers: writers.max(1),
        }
    }
}

impl<I: Send + 'static, O: Send + 'static> Group<I, O> {
    /// Runs `item` in the next batch; `write` writes a batch and answers
    /// each operation, in order. `None` if the writer failed (panicked)
    /// before answering: then nothing is known of the operation.
    pub async fn run<W, F>(self: &Arc<Self>, item: I, write: W) -> Option<O>
    where
        W: Fn(Vec<I>) -> F + Send + Sync + 'static,
        F: Future<Output = Vec<O>> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let start = {
            let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
            q.waiting.push((item, tx));
            let start = q.writing < self.writers;
            q.writing += usize::from(start);
            start
        };
        if start {
            // A task of its own: a caller that goes away (a closed
            // connection) does not take the others' batch with it.
            let group = self.clone();
            tokio::spawn(async move { group.write_all(write).await });
        }
        rx.await.ok()
    }

    /// Writes batches until nothing waits.
    async fn write_all<W, F>(&self, write: W)
    where
        W: Fn(Vec<I>) -> F + Send + Sync + 'static,
        F: Future<Output = Vec<O>> + Send + 'static,
    {
        loop {
            let batch: Vec<(I, oneshot::Sender<O>)> = {
                let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
                if q.waiting.is_empty() {
                    q.writing -= 1;
                    return;
                }
                let n = q.waiting.len().min(self.max);
                q.waiting.drain(..n).collect()
            };
            let (items, answers): (Vec<I>, Vec<oneshot::Sender<O>>) = batch.into_iter().unzip();
            // A panic in one batch drops its answers (its callers learn
            // nothing was confirmed) and the writer goes on.
            if let Ok(outs) = tokio::spawn(write(items)).await {
                for (answer, out) in answers.into_iter().zip(outs) {
                    let _ = answer.send(out);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_caller_gets_its_own_answer_and_late_callers_share_a_batch() {
        let group: Arc<Group<u32, (u32, usize)>> = Arc::new(Group::new(64, 2));
        let sizes = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for i in 0..200u32 {
            let (group, sizes) = (group.clone(), sizes.clone());
            tasks.push(tokio::spawn(async move {
                group
                    .run(i, move |batch: Vec<u32>| {
                        let sizes = sizes.clone();
                        async move {
                            sizes.lock().unwrap().push(batch.len());
                            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
                            let n = batch.len();
                            batch.into_iter().map(|i| (i * 2, n)).collect()
                        }
                    })
                    .await
            }));
        }
        for (i, t) in tasks.into_iter().enumerate() {
            let (doubled, _) = t.await.unwrap().expect("answered");
            assert_eq!(doubled, i as u32 * 2);
        }
        let sizes = sizes.lock().unwrap();
        assert_eq!(sizes.iter().sum::<usize>(), 200);
        assert!(sizes.iter().all(|&n| n <= 64));
        assert!(
            sizes.len() < 200,
            "callers arriving during a write share the next batch"
        );
    }

    #[tokio::test]
    async fn a_writer_that_panics_answers_nothing_and_the_next_batch_runs() {
        let group: Arc<Group<u32, u32>> = Arc::new(Group::new(8, 1));
        let write = |batch: Vec<u32>| async move {
            assert!(!batch.contains(&13), "unlucky");
            batch
        };
        assert_eq!(group.run(13, write).await, None);
        assert_eq!(group.run(7, write).await, Some(7));
    }
}
