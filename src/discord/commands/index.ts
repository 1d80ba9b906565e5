import type { Client, Interaction } from 'discord.js';
import type { Config } from '../../config.js';
import type { Logger } from '../../log.js';
import { ask } from './ask.js';
import { budget } from './budget.js';
import { type CommandContext, replyPrivately, type SlashCommand, UserError } from './command.js';
import { escalate, handleEscalateButton } from './escalate.js';
import { settings } from './settings.js';
import { usage } from './usage.js';

/** Every slash command, as registered by `npm run deploy-commands`. */
export const COMMANDS: readonly SlashCommand[] = [ask, escalate, usage, budget, settings];

/** An interaction's token lasts 15 minutes; whatever is still running a minute before is stopped. */
export const INTERACTION_DEADLINE_MS = 14 * 60_000;

const APOLOGY = 'Sorry, something went wrong on our side; it has been logged. Nothing was changed.';
const TOO_LONG =
  'This took longer than Discord lets an answer run (15 minutes) and was stopped; only what was used was charged.';

/**
 * One dispatcher for every slash command and the Escalate button. Errors meant for the person come back
 * privately and specifically; anything else is logged and answered with a short apology.
 */
export async function handleInteraction(interaction: Interaction, context: CommandContext): Promise<void> {
  if (!interaction.isChatInputCommand() && !interaction.isButton()) return;
  const deadline = AbortSignal.timeout(context.interactionDeadlineMs ?? INTERACTION_DEADLINE_MS);
  const scoped = { ...context, signal: AbortSignal.any([context.signal, deadline]) };
  const what = interaction.isChatInputCommand() ? `/${interaction.commandName}` : interaction.customId;
  try {
    if (interaction.isChatInputCommand()) {
      const command = COMMANDS.find((candidate) => candidate.data.name === interaction.commandName);
      if (!command) throw new UserError(`This bot has no /${interaction.commandName} any more.`);
      await command.execute(interaction, scoped);
    } else if (!(await handleEscalateButton(interaction, scoped))) {
      throw new UserError('This button no longer does anything.');
    }
  } catch (error) {
    const text = error instanceof UserError ? error.message : deadline.aborted ? TOO_LONG : APOLOGY;
    if (!(error instanceof UserError)) {
      context.log.error({ err: error, interactionId: interaction.id, command: what }, 'a command failed');
    }
    await replyPrivately(interaction, text).catch((replyError: unknown) =>
      context.log.warn({ err: replyError, interactionId: interaction.id }, 'could not tell the user'),
    );
  }
}

/**
 * At start-up, compares the commands registered with Discord (in DISCORD_GUILD_ID, else global) with this
 * version's, and logs a warning naming the fix when they differ. Registering is `npm run deploy-commands`'s
 * job, not every start's.
 */
export async function warnIfCommandsDiffer(client: Client<true>, config: Config, log: Logger): Promise<void> {
  try {
    const registered = await client.application.commands.fetch(
      config.discord.guildId ? { guildId: config.discord.guildId } : {},
    );
    const differs =
      JSON.stringify(canonicalCommands([...registered.values()].map((command) => command.toJSON()))) !==
      JSON.stringify(canonicalCommands(COMMANDS.map((command) => command.data)));
    if (differs) {
      log.warn(
        { registered: [...registered.values()].map((command) => command.name).sort() },
        'the slash commands registered with Discord differ from this version: run `npm run deploy-commands`',
      );
    }
  } catch (error) {
    log.warn({ err: error }, 'could not read the registered slash commands');
  }
}

/** What matters of a command definition, in a stable shape: Discord adds ids and defaults to what it stores. */
export function canonicalCommands(commands: readonly unknown[]): unknown[] {
  return commands
    .map((command) => canonicalOption(command as Definition))
    .sort((a, b) => String(a.name).localeCompare(String(b.name)));
}

/** A command or one of its options, as far as this comparison reads them. */
interface Definition {
  name?: string;
  description?: string;
  type?: number;
  required?: boolean;
  choices?: { name: string; value: string | number }[];
  channel_types?: number[];
  min_length?: number;
  max_length?: number;
  options?: Definition[];
  default_member_permissions?: string | null;
}

function canonicalOption(option: Definition): Record<string, unknown> {
  return {
    name: option.name,
    description: option.description ?? '',
    type: option.type ?? 1,
    required: option.required ?? false,
    choices: (option.choices ?? []).map((choice) => [choice.name, choice.value]),
    channelTypes: option.channel_types ?? [],
    minLength: option.min_length ?? null,
    maxLength: option.max_length ?? null,
    options: (option.options ?? []).map(canonicalOption),
    permissions: option.default_member_permissions ?? null,
  };
}
