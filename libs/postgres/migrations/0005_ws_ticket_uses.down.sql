DROP TABLE IF EXISTS ws_ticket_uses;
