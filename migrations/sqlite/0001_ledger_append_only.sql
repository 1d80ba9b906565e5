-- The usage ledger is append-only: a charge, once written, is never changed or removed.
CREATE TRIGGER `usage_ledger_no_update` BEFORE UPDATE ON `usage_ledger`
BEGIN
  SELECT RAISE(ABORT, 'usage_ledger is append-only');
END;
--> statement-breakpoint
CREATE TRIGGER `usage_ledger_no_delete` BEFORE DELETE ON `usage_ledger`
BEGIN
  SELECT RAISE(ABORT, 'usage_ledger is append-only');
END;
