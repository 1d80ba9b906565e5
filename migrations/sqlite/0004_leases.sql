CREATE TABLE `event_claims` (
	`event_id` text PRIMARY KEY NOT NULL,
	`instance_id` text NOT NULL,
	`claimed_at` integer NOT NULL
);
--> statement-breakpoint
CREATE INDEX `event_claims_claimed_at` ON `event_claims` (`claimed_at`);--> statement-breakpoint
CREATE TABLE `instances` (
	`id` text PRIMARY KEY NOT NULL,
	`host` text NOT NULL,
	`pid` integer NOT NULL,
	`process_started_at` integer NOT NULL,
	`started_at` integer NOT NULL,
	`lease_expires_at` integer NOT NULL
);
--> statement-breakpoint
ALTER TABLE `bot_starts` ADD `host` text DEFAULT '' NOT NULL;--> statement-breakpoint
-- Reservations belong to an instance under a lease instead of a process id. The table is rebuilt (it
-- holds only calls in flight, and stays WITHOUT ROWID); a reservation left by a process of the old
-- version belongs to no instance, so the first sweep charges it at its reserved amount.
CREATE TABLE `reservations_with_instances` (
	`request_id` text PRIMARY KEY NOT NULL,
	`turn_id` text NOT NULL,
	`user_id` text NOT NULL,
	`guild_id` text,
	`channel_id` text,
	`provider` text NOT NULL,
	`model` text NOT NULL,
	`purpose` text NOT NULL,
	`amount_micros` integer NOT NULL,
	`created_at` integer NOT NULL,
	`expires_at` integer NOT NULL,
	`instance_id` text NOT NULL
) WITHOUT ROWID;
--> statement-breakpoint
INSERT INTO `reservations_with_instances`
SELECT `request_id`, `turn_id`, `user_id`, `guild_id`, `channel_id`, `provider`, `model`, `purpose`,
       `amount_micros`, `created_at`, `expires_at`, 'pid:' || `holder_pid`
FROM `reservations`;
--> statement-breakpoint
DROP TABLE `reservations`;
--> statement-breakpoint
ALTER TABLE `reservations_with_instances` RENAME TO `reservations`;