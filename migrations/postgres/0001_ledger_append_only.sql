-- The usage ledger is append-only: a charge, once written, is never changed or removed.
CREATE FUNCTION usage_ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'usage_ledger is append-only';
END;
$$;
--> statement-breakpoint
CREATE TRIGGER usage_ledger_no_update_or_delete BEFORE UPDATE OR DELETE ON usage_ledger
  FOR EACH ROW EXECUTE FUNCTION usage_ledger_append_only();
--> statement-breakpoint
-- Every reserve and settle rewrites a member's and a server's counter row: room on each page lets
-- PostgreSQL update them in place (HOT updates, no index writes), and keeps their pages small to vacuum.
ALTER TABLE spend_counters SET (fillfactor = 50);
--> statement-breakpoint
ALTER TABLE reservations SET (fillfactor = 70);
