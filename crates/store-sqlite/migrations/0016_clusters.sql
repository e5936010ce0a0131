-- What an installation administrator says of a registered cluster: the
-- prefix its API server gives OIDC user names that are e-mail addresses
-- (e.g. `oidc:`), so `oidc:carol@client.example` stands for that user
-- where no explicit mapping says otherwise. No row: explicit mappings only.
CREATE TABLE clusters (
    name          TEXT PRIMARY KEY,
    email_prefix  TEXT,
    updated_at    TEXT NOT NULL
);
