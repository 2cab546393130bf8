-- High availability: the agents a sign-in was sent to first that did not answer (their
-- connection ended, or they looked stuck), comma-separated, before the one that answered.
ALTER TABLE signins ADD COLUMN other_agents TEXT;
