-- A sender claims the messages it is about to send until a lease ends,
-- in one write, so that with several replicas each message is sent by one
-- of them; a replica that died mid-send leaves a lease that runs out.
ALTER TABLE outbox ADD COLUMN claimed_until TEXT;
