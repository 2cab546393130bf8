-- Agent statistics: request counts, failures by Win32 code and the round-trip histogram,
-- measured by the cloud and kept across disconnects; the UPN suffixes an agent last announced.
CREATE TABLE IF NOT EXISTS agent_stats (
    agent_id TEXT PRIMARY KEY REFERENCES agents(id),
    stats TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);
ALTER TABLE agents ADD COLUMN upn_suffixes TEXT;
