CREATE TABLE "answered_channels" (
	"guild_id" text NOT NULL,
	"channel_id" text NOT NULL,
	"added_by" text NOT NULL,
	"added_at" bigint NOT NULL,
	CONSTRAINT "answered_channels_guild_id_channel_id_pk" PRIMARY KEY("guild_id","channel_id")
);
--> statement-breakpoint
CREATE TABLE "bot_starts" (
	"id" serial PRIMARY KEY NOT NULL,
	"started_at" bigint NOT NULL,
	"pid" bigint NOT NULL,
	"host" text DEFAULT '' NOT NULL
);
--> statement-breakpoint
CREATE TABLE "budget_audit" (
	"id" serial PRIMARY KEY NOT NULL,
	"guild_id" text NOT NULL,
	"scope" text NOT NULL,
	"user_id" text DEFAULT '' NOT NULL,
	"old_amount_micros" bigint,
	"old_period" text,
	"new_amount_micros" bigint,
	"new_period" text,
	"changed_by" text NOT NULL,
	"changed_at" bigint NOT NULL
);
--> statement-breakpoint
CREATE TABLE "budget_notices" (
	"kind" text NOT NULL,
	"guild_key" text NOT NULL,
	"user_key" text NOT NULL,
	"window_start" bigint NOT NULL,
	"percent" bigint NOT NULL,
	"notified_at" bigint NOT NULL,
	CONSTRAINT "budget_notices_kind_guild_key_user_key_window_start_percent_pk" PRIMARY KEY("kind","guild_key","user_key","window_start","percent")
);
--> statement-breakpoint
CREATE TABLE "budgets" (
	"id" serial PRIMARY KEY NOT NULL,
	"scope" text NOT NULL,
	"guild_id" text NOT NULL,
	"user_id" text DEFAULT '' NOT NULL,
	"amount_micros" bigint NOT NULL,
	"period" text NOT NULL,
	"set_by" text NOT NULL,
	"set_at" bigint NOT NULL
);
--> statement-breakpoint
CREATE TABLE "escalations" (
	"turn_id" text PRIMARY KEY NOT NULL,
	"requested_by" text NOT NULL,
	"requested_at" bigint NOT NULL
);
--> statement-breakpoint
CREATE TABLE "event_claims" (
	"event_id" text PRIMARY KEY NOT NULL,
	"instance_id" text NOT NULL,
	"claimed_at" bigint NOT NULL
);
--> statement-breakpoint
CREATE TABLE "guild_settings" (
	"guild_id" text PRIMARY KEY NOT NULL,
	"escalation_mode" text DEFAULT 'auto' NOT NULL,
	"show_footer" boolean DEFAULT true NOT NULL,
	"alerts_channel_id" text,
	"updated_by" text NOT NULL,
	"updated_at" bigint NOT NULL
);
--> statement-breakpoint
CREATE TABLE "instances" (
	"id" text PRIMARY KEY NOT NULL,
	"host" text NOT NULL,
	"pid" bigint NOT NULL,
	"process_started_at" bigint NOT NULL,
	"started_at" bigint NOT NULL,
	"lease_expires_at" bigint NOT NULL
);
--> statement-breakpoint
CREATE TABLE "reservations" (
	"request_id" text PRIMARY KEY NOT NULL,
	"turn_id" text NOT NULL,
	"user_id" text NOT NULL,
	"guild_id" text,
	"channel_id" text,
	"provider" text NOT NULL,
	"model" text NOT NULL,
	"purpose" text NOT NULL,
	"amount_micros" bigint NOT NULL,
	"created_at" bigint NOT NULL,
	"expires_at" bigint NOT NULL,
	"instance_id" text NOT NULL
);
--> statement-breakpoint
CREATE TABLE "spend_counters" (
	"kind" text NOT NULL,
	"guild_key" text NOT NULL,
	"user_key" text NOT NULL,
	"day_start" bigint NOT NULL,
	"day_spent_micros" bigint NOT NULL,
	"day_reserved_micros" bigint NOT NULL,
	"week_start" bigint NOT NULL,
	"week_spent_micros" bigint NOT NULL,
	"week_reserved_micros" bigint NOT NULL,
	"month_start" bigint NOT NULL,
	"month_spent_micros" bigint NOT NULL,
	"month_reserved_micros" bigint NOT NULL,
	CONSTRAINT "spend_counters_kind_guild_key_user_key_pk" PRIMARY KEY("kind","guild_key","user_key")
);
--> statement-breakpoint
CREATE TABLE "turns" (
	"turn_id" text PRIMARY KEY NOT NULL,
	"user_id" text NOT NULL,
	"guild_id" text,
	"channel_id" text,
	"status" text NOT NULL,
	"models" text NOT NULL,
	"final_model" text NOT NULL,
	"escalation_source" text,
	"escalation_reason" text,
	"category" text,
	"confidence" double precision,
	"tokens" bigint NOT NULL,
	"cost_micros" bigint NOT NULL,
	"smart_only_cost_micros" bigint NOT NULL,
	"question" text NOT NULL,
	"answer" text NOT NULL,
	"question_message_id" text,
	"check_verdict" text,
	"check_category" text,
	"check_confidence" double precision,
	"triage_route" text,
	"triage_category" text,
	"triage_confidence" double precision,
	"created_at" bigint NOT NULL
);
--> statement-breakpoint
CREATE TABLE "usage_ledger" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "usage_ledger_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"request_id" text NOT NULL,
	"turn_id" text NOT NULL,
	"user_id" text NOT NULL,
	"guild_id" text,
	"channel_id" text,
	"provider" text NOT NULL,
	"model" text NOT NULL,
	"purpose" text NOT NULL,
	"outcome" text NOT NULL,
	"input_tokens" bigint NOT NULL,
	"cached_input_tokens" bigint NOT NULL,
	"cache_write_tokens" bigint NOT NULL,
	"output_tokens" bigint NOT NULL,
	"cost_micros" bigint NOT NULL,
	"smart_cost_micros" bigint NOT NULL,
	"reserved_micros" bigint NOT NULL,
	"charged_at" bigint NOT NULL,
	"created_at" bigint NOT NULL
);
--> statement-breakpoint
CREATE INDEX "budget_audit_guild" ON "budget_audit" USING btree ("guild_id","changed_at");--> statement-breakpoint
CREATE UNIQUE INDEX "budgets_scope_guild_user" ON "budgets" USING btree ("guild_id","scope","user_id");--> statement-breakpoint
CREATE INDEX "event_claims_claimed_at" ON "event_claims" USING btree ("claimed_at");--> statement-breakpoint
CREATE INDEX "reservations_instance" ON "reservations" USING btree ("instance_id");--> statement-breakpoint
CREATE INDEX "turns_user_channel" ON "turns" USING btree ("user_id","channel_id","created_at");--> statement-breakpoint
CREATE INDEX "turns_user_guild" ON "turns" USING btree ("guild_id","user_id","created_at");--> statement-breakpoint
CREATE UNIQUE INDEX "usage_ledger_request_id" ON "usage_ledger" USING btree ("request_id");--> statement-breakpoint
CREATE INDEX "usage_ledger_user_period" ON "usage_ledger" USING btree ("guild_id","user_id","charged_at","model","cost_micros","smart_cost_micros","input_tokens","cached_input_tokens","cache_write_tokens","output_tokens");