//! The stages of a graceful stop, shared by the listeners through a watch channel. It owns only
//! the ordering; each listener decides what a stage means for its own connections, and `run`
//! moves from one stage to the next.

use tokio::sync::watch;

/// Where the server is in its stop, in order: each stage includes what the earlier ones started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    /// Accepting connections and serving them.
    Serving,
    /// No new connections on any listener; HTTP requests in flight run to their answer, and XMPP
    /// sessions carry on, so that an admin call in flight still finds the sessions it acts on.
    Draining,
    /// Every XMPP session is closed with `system-shutdown`.
    Closing,
}

/// What a listener or connection watches to learn the stage.
pub type Stages = watch::Receiver<Stage>;

/// Completes once the server has reached `stage`, or once nobody can move it on any more (the
/// sender is gone, which only happens when the server is going away anyway).
pub async fn reached(stages: &mut Stages, stage: Stage) {
    let _ = stages.wait_for(|current| *current >= stage).await;
}
