-- /settings threads: off for every server until its admins turn it on.
ALTER TABLE "guild_settings" ADD COLUMN "answers_in_threads" boolean DEFAULT false NOT NULL;