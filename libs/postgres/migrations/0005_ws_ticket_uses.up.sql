-- WebSocket tickets are single-use across notifier replicas: the first replica to insert a
-- ticket's jti wins, every later presentation finds the row and is refused. Rows are only
-- needed while the ticket could still verify (at most auth.MaxWSTicketTTL plus leeway);
-- the notifier prunes older ones.
CREATE TABLE ws_ticket_uses (
    jti     text        PRIMARY KEY,
    used_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX ws_ticket_uses_used_at ON ws_ticket_uses (used_at);
