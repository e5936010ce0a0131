//! The outbox sender: delivers the messages the server wrote with the
//! decisions that caused them, through an SMTP relay (lettre), or for
//! development into a directory as `.eml` files. A message the relay
//! refuses or cannot take is tried again later, with a growing delay; a
//! delivered one is never sent again.

use changegate_store::{Store, StoreError};
use chrono::{DateTime, SubsecRound as _, TimeDelta, Utc};
use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

/// Where messages go, and the sender address.
pub struct Mailer {
    transport: Transport,
    from: Mailbox,
}

enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    /// Each message as `<outbox id>.eml`, readable with any mail client.
    Dir(std::path::PathBuf),
}

impl Mailer {
    /// `url`: `smtp://host:port` (plain, e.g. a relay on the same host),
    /// `smtp://user:pass@host:587?tls=required` (STARTTLS) or
    /// `smtps://host:465`; `from`: e.g. `changegate <changes@msp.example>`.
    pub fn new(url: &str, from: &str) -> Result<Self, String> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|e| format!("--smtp {url:?}: {e}"))?
            .timeout(Some(std::time::Duration::from_secs(20)))
            .build();
        Ok(Mailer {
            transport: Transport::Smtp(transport),
            from: sender(from)?,
        })
    }

    /// Write every message into `dir` (created if missing) as a `.eml`
    /// file instead of sending it: development and the demo.
    pub fn to_dir(dir: &std::path::Path, from: &str) -> Result<Self, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("--mail-dir {}: {e}", dir.display()))?;
        Ok(Mailer {
            transport: Transport::Dir(dir.to_path_buf()),
            from: sender(from)?,
        })
    }
}

fn sender(from: &str) -> Result<Mailbox, String> {
    from.parse()
        .map_err(|e| format!("--mail-from {from:?}: {e}"))
}

/// The delay before the next attempt after `attempts` failed ones: one
/// minute, doubling, at most an hour.
pub fn backoff(attempts: i64) -> TimeDelta {
    let minutes = 1i64 << attempts.clamp(0, 6);
    TimeDelta::minutes(minutes.min(60))
}

/// What a pass did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Sent {
    pub delivered: usize,
    pub failed: usize,
}

/// How long a sender holds the messages it claimed: longer than it takes
/// to send a batch through a slow relay (20 s a message at worst), after
/// which a replica that died mid-send leaves them to another.
const LEASE: TimeDelta = TimeDelta::minutes(10);

/// Messages claimed at a time.
const BATCH: i64 = 20;

/// Deliver the messages due at `now`, each claimed first so that another
/// replica passing at the same moment sends the others, not these.
pub async fn send_due(
    store: &dyn Store,
    mailer: &Mailer,
    now: DateTime<Utc>,
) -> Result<Sent, StoreError> {
    let mut done = Sent::default();
    // Whole seconds: the lease is written, then matched exactly when the
    // outcome is recorded, and every database keeps seconds exactly.
    let lease_until = (now + LEASE).trunc_subsecs(0);
    for m in store.claim_messages(now, BATCH, lease_until).await? {
        let built = m
            .recipient
            .parse::<Mailbox>()
            .map_err(|e| e.to_string())
            .and_then(|to| {
                lettre::Message::builder()
                    .from(mailer.from.clone())
                    .to(to)
                    .subject(m.subject.clone())
                    .header(ContentType::TEXT_PLAIN)
                    .body(m.body.clone())
                    .map_err(|e| e.to_string())
            });
        let result = match (built, &mailer.transport) {
            (Ok(message), Transport::Smtp(smtp)) => smtp
                .send(message)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
            (Ok(message), Transport::Dir(dir)) => {
                tokio::fs::write(dir.join(format!("{:06}.eml", m.id)), message.formatted())
                    .await
                    .map_err(|e| e.to_string())
            }
            (Err(e), _) => Err(e),
        };
        match result {
            Ok(()) => {
                if !store.message_sent(m.id, lease_until, now).await? {
                    tracing::warn!(
                        message = m.id,
                        "e-mail sent after its claim ran out; another sender may send it too"
                    );
                }
                done.delivered += 1;
            }
            Err(e) => {
                tracing::warn!(message = m.id, to = %m.recipient, error = %e, "e-mail not delivered; will retry");
                store
                    .message_failed(m.id, lease_until, &e, now + backoff(m.attempts + 1))
                    .await?;
                done.failed += 1;
            }
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_from_a_minute_to_an_hour() {
        assert_eq!(backoff(1), TimeDelta::minutes(2));
        assert_eq!(backoff(0), TimeDelta::minutes(1));
        assert_eq!(backoff(5), TimeDelta::minutes(32));
        assert_eq!(backoff(6), TimeDelta::minutes(60));
        assert_eq!(backoff(40), TimeDelta::minutes(60));
    }
}
