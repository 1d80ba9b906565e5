import {
  ButtonStyle,
  ComponentType,
  InteractionResponseType,
  MessageFlags,
  PermissionFlagsBits,
} from 'discord.js';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { COMMANDS } from '../../src/discord/commands/index.js';
import { registerCommands } from '../../src/discord/commands/register.js';
import { anthropicErrors } from '../fakes/anthropic.js';
import type { RecordedRequest } from '../fakes/discord/index.js';
import { openaiErrors } from '../fakes/openai.js';
import { ACCEPT, type BotHarness, startBotHarness, until } from '../support/bot.js';
import { BACKENDS } from '../support/databases.js';
import { runEntryPoint } from '../support/process.js';

describe.each(BACKENDS)('on %s', (backend) => {
  let harness: BotHarness;

  beforeEach(async () => {
    harness = await startBotHarness({
      backend,
      before: (discord, config) => registerCommands(config.discord).then(() => {}),
    });
  });

  afterEach(() => harness.close());

  const CALLBACK = 'POST /interactions/:interaction_id/:interaction_token/callback';
  const EDIT_ORIGINAL = 'PATCH /webhooks/:application_id/:interaction_token/messages/:message_id';

  /** What the person finally saw for an interaction: the original reply and follow-ups, as Discord keeps them. */
  async function settled(interactionId: string, done: (text: string) => boolean) {
    let text = '';
    await until(() => {
      const { original, followUps } = harness.discord.interactionResponses(interactionId);
      text = [original?.content ?? '', ...followUps.map((message) => message.content)].join('\n');
      return done(text);
    });
    return harness.discord.interactionResponses(interactionId);
  }

  const isPrivate = (message: { flags?: number } | undefined) =>
    ((message?.flags ?? 0) & MessageFlags.Ephemeral) !== 0;

  /** A private answer to an interaction (the error path): its text. */
  async function privateAnswer(interactionId: string): Promise<string> {
    const { original, followUps } = await settled(interactionId, (text) => text.trim() !== '');
    const message = [original, ...followUps].find((candidate) => candidate?.content);
    expect(isPrivate(message)).toBe(true);
    return message?.content ?? '';
  }

  function admin(discord = harness.discord) {
    return discord.owner.id;
  }

  /** Budgets and audit rows as stored: a refusal must leave both untouched. */
  async function storedBudgets() {
    return {
      budgets: await harness.database.query(
        'SELECT scope, user_id, amount_micros, period FROM budgets ORDER BY id',
      ),
      audit: { rows: await harness.database.value('SELECT COUNT(*) FROM budget_audit') },
    };
  }

  describe('registration', () => {
    it('when `npm run deploy-commands` runs with DISCORD_GUILD_ID, then the commands are registered in that server with their options', async () => {
      const outcome = await runEntryPoint('src/deploy-commands.ts', [], {
        env: {
          ...process.env,
          ...harness.environment,
          DISCORD_GUILD_ID: harness.discord.guild.id,
          LOG_LEVEL: 'info',
        },
      });
      expect(outcome.stderr).toBe('');
      expect(outcome.code).toBe(0);
      const registered = harness.discord.commands(harness.discord.guild.id);
      expect(registered.map((command) => command.name).sort()).toEqual([
        'ask',
        'budget',
        'escalate',
        'settings',
        'usage',
      ]);
      const budget = registered.find((command) => command.name === 'budget');
      expect(budget?.options?.map((option) => option.name)).toEqual([
        'set',
        'default',
        'server',
        'clear',
        'role',
        'role-clear',
        'show',
      ]);
      expect(budget?.default_member_permissions).toBe(String(PermissionFlagsBits.ManageGuild));
      const usage = registered.find((command) => command.name === 'usage');
      expect(usage?.options?.map((option) => option.name)).toEqual([
        'me',
        'member',
        'server',
        'export',
        'bot',
      ]);
      // Everyone sees /usage (for `me`); the bot checks the other views itself.
      expect(usage?.default_member_permissions ?? null).toBeNull();
    });

    it('when the registered commands match the code, then start-up logs no warning; when they differ, it says to deploy', async () => {
      expect(harness.logs.some((line) => String(line.msg).includes('deploy-commands'))).toBe(false);
      await harness.close();
      harness = await startBotHarness();
      await until(() => harness.logs.some((line) => String(line.msg).includes('npm run deploy-commands')));
      expect(harness.logs.find((line) => String(line.msg).includes('deploy-commands'))?.level).toBe(40);
    });
  });

  describe('/ask', () => {
    it('when a slow model is asked, then the interaction is acknowledged first and the answer streams into the reply with a footer and an Escalate button', async () => {
      harness.openai.script(
        {
          type: 'stream',
          chunks: ['A monad ', 'chains ', 'computations.'],
          firstChunkDelayMs: 1_500,
          chunkDelayMs: 150,
        },
        { type: 'completion', content: ACCEPT },
      );
      const interaction = harness.discord.chatInputCommand({
        commandName: 'ask',
        options: { prompt: 'what is a monad?' },
      });

      const ack = await harness.discord.waitForRequest((request) => request.route === CALLBACK);
      expect(ack.body.type).toBe(InteractionResponseType.DeferredChannelMessageWithSource);
      // Acknowledged while the model had not yet sent a word.
      expect(harness.discord.requests.some((request) => request.route === EDIT_ORIGINAL)).toBe(false);

      const { original } = await settled(interaction.id, (text) => text.includes('-# gpt-4o-mini'));
      expect(original?.content).toMatch(
        /^A monad chains computations\.\n-# gpt-4o-mini · [\d,]+ tokens · \$0\.\d{4}$/,
      );
      expect(isPrivate(original)).toBe(false);
      const row = original?.components?.[0];
      const button = row && 'components' in row ? row.components[0] : undefined;
      expect(button).toMatchObject({
        type: ComponentType.Button,
        style: ButtonStyle.Secondary,
        label: 'Escalate to Claude Haiku',
      });
      const edits = harness.discord.requests.filter((request) => request.route === EDIT_ORIGINAL);
      expect(edits.length).toBeGreaterThanOrEqual(2);
      for (const edit of edits) expect(edit.body.allowed_mentions).toMatchObject({ parse: [] });
      expect(harness.openai.requests[0]?.body.messages.at(-1)).toEqual({
        role: 'user',
        content: 'what is a monad?',
      });
    });

    it('when asked privately for the smart model, then only Claude answers and only the asker sees it', async () => {
      harness.anthropic.script({ type: 'stream', text: 'Haiku here.' });
      const interaction = harness.discord.chatInputCommand({
        commandName: 'ask',
        options: { prompt: 'hello', model: 'smart', private: true },
      });
      const { original } = await settled(interaction.id, (text) => text.includes('-# claude-haiku'));
      expect(original?.content).toMatch(/^Haiku here\.\n-# claude-haiku-4-5 \(requested by user\)/);
      expect(isPrivate(original)).toBe(true);
      // Written by the smart model already: nothing to escalate.
      expect(original?.components ?? []).toEqual([]);
      expect(harness.openai.requests).toHaveLength(0);
    });

    it('when both providers are down, then the asker is told privately and nothing is charged', async () => {
      // Quota errors: final at once (no retries), and each sends the call to the other provider.
      harness.openai.script(openaiErrors.insufficientQuota());
      harness.anthropic.script(anthropicErrors.creditBalance());
      const interaction = harness.discord.chatInputCommand({
        commandName: 'ask',
        options: { prompt: 'hello' },
      });
      expect(await privateAnswer(interaction.id)).toBe(
        'both model providers are unavailable right now; nothing was charged',
      );
      const byModel = await harness.app.storage.usage.byModel(
        harness.discord.user.id,
        harness.discord.guild.id,
        { startMs: 0, endMs: Date.now() + 1 },
      );
      expect(byModel.reduce((sum, row) => sum + row.costMicros, 0)).toBe(0);
    });
  });

  describe('every interaction', () => {
    it('when a command is still running at its deadline, then it is stopped, the person is told why, and nothing stays reserved', async () => {
      await harness.close();
      harness = await startBotHarness({
        backend,
        before: (_discord, config) => registerCommands(config.discord).then(() => {}),
        bot: { interactionDeadlineMs: 300 },
      });
      harness.openai.script({ type: 'stream', text: 'Too late.', firstChunkDelayMs: 5_000 });
      const interaction = harness.discord.chatInputCommand({
        commandName: 'ask',
        options: { prompt: 'slow?' },
      });
      expect(await privateAnswer(interaction.id)).toBe(
        'This took longer than Discord lets an answer run (15 minutes) and was stopped; only what was used was charged.',
      );
      expect(await harness.database.value('SELECT COUNT(*) FROM reservations')).toBe(0);
    });
  });

  /** A mention answered by the fast model (accepted by the check): the question and the answer's messages. */
  async function answeredMention(text = 'what is a monad?') {
    harness.openai.script(
      { type: 'stream', text: 'A monad chains computations.' },
      { type: 'completion', content: ACCEPT },
    );
    const question = harness.discord.messageCreate({ content: `<@${harness.discord.bot.id}> ${text}` });
    const final = await harness.discord.waitForRequest(
      (request) => String(request.body?.content).includes('-# gpt-4o-mini') && request.method === 'PATCH',
    );
    return { question, answerId: String(final.responseBody.id), final };
  }

  const refineRows = async () => {
    await harness.app.storage.flush();
    return {
      rows: await harness.database.value("SELECT COUNT(*) FROM usage_ledger WHERE purpose = 'refine'"),
    };
  };

  describe('/escalate and the Escalate button', () => {
    it('when used without a prompt, then Claude answers the latest question again as a reply to it, improving on the earlier answer', async () => {
      const { question } = await answeredMention();
      harness.anthropic.script({
        type: 'stream',
        text: 'A monad is a monoid in the category of endofunctors.',
      });
      await harness.app.storage.flush();

      const interaction = harness.discord.chatInputCommand({ commandName: 'escalate' });
      const { original } = await settled(interaction.id, (text) => text.includes('answered again'));
      expect(isPrivate(original)).toBe(true);
      const reply = harness.discord
        .messagesIn(harness.discord.channel.id)
        .find((message) => message.content.startsWith('A monad is a monoid'));
      expect(reply?.message_reference?.message_id).toBe(question.id);
      expect(reply?.content).toMatch(
        /\n-# gpt-4o-mini → claude-haiku-4-5 \(requested by user\)|\n-# claude-haiku-4-5 \(requested by user\)/,
      );
      expect(original?.content).toContain(reply?.id);
      const sent = JSON.stringify(harness.anthropic.requests[0]?.body.messages);
      expect(sent).toContain('what is a monad?');
      expect(sent).toContain('A monad chains computations.');
      expect((await refineRows()).rows).toBe(1);
    });

    it('when used with a prompt, then Claude answers it directly into the reply', async () => {
      harness.anthropic.script({ type: 'stream', text: 'Directly from Claude.' });
      const interaction = harness.discord.chatInputCommand({
        commandName: 'escalate',
        options: { prompt: 'hi there' },
      });
      const { original } = await settled(interaction.id, (text) => text.includes('-# claude'));
      expect(original?.content).toMatch(/^Directly from Claude\.\n-# claude-haiku-4-5 \(requested by user\)/);
      expect(harness.anthropic.requests[0]?.body.messages.at(-1).content).toEqual([
        { type: 'text', text: 'hi there' },
      ]);
      await harness.app.storage.flush();
      expect(await harness.database.query('SELECT purpose FROM usage_ledger')).toEqual([
        { purpose: 'direct' },
      ]);
    });

    it('when the user has no earlier question in the channel, then they are told so privately and nothing is called', async () => {
      const interaction = harness.discord.chatInputCommand({ commandName: 'escalate' });
      expect(await privateAnswer(interaction.id)).toMatch(/^You have no earlier question in this channel/);
      expect(harness.anthropic.requests).toHaveLength(0);
    });

    it('when the Escalate button is clicked twice, then Claude answers once and the second click charges nothing', async () => {
      const { answerId, final } = await answeredMention();
      const customId = final.body.components[0].components[0].custom_id as string;
      harness.anthropic.script({ type: 'stream', text: 'The improved answer.' });

      const first = harness.discord.clickButton({ messageId: answerId, customId });
      await settled(first.id, (text) => text.includes('answered again'));
      const second = harness.discord.clickButton({ messageId: answerId, customId });
      expect(await privateAnswer(second.id)).toBe(
        'Claude Haiku has already answered this again; nothing more was charged.',
      );
      expect(harness.anthropic.requests).toHaveLength(1);
      expect((await refineRows()).rows).toBe(1);
    });

    it('when someone else clicks the Escalate button, then they are refused and nothing is called', async () => {
      const { answerId, final } = await answeredMention();
      const customId = final.body.components[0].components[0].custom_id as string;
      const click = harness.discord.clickButton({
        messageId: answerId,
        customId,
        userId: harness.discord.owner.id,
      });
      expect(await privateAnswer(click.id)).toBe('Only the person who asked can escalate this answer.');
      expect(harness.anthropic.requests).toHaveLength(0);
    });

    it("when the user's budget cannot cover Claude, then the escalation is refused privately, nothing is charged, and the button still works later", async () => {
      const { answerId, final } = await answeredMention();
      const customId = final.body.components[0].components[0].custom_id as string;
      await harness.app.storage.budgets.setBudget(
        {
          guildId: harness.discord.guild.id,
          scope: 'user',
          userId: harness.discord.user.id,
          changedBy: admin(),
        },
        { amountMicros: 1_000, period: 'month' },
      );
      const click = harness.discord.clickButton({ messageId: answerId, customId });
      expect(await privateAnswer(click.id)).toMatch(/^Not enough left in your budget/);
      expect(harness.anthropic.requests).toHaveLength(0);
      expect(await harness.database.value('SELECT COUNT(*) FROM escalations')).toBe(0);
    });
  });

  describe('/usage', () => {
    it('when the user has known usage, then the first line and the figures match the ledger, and the chart is a PNG', async () => {
      harness.openai.script(
        { type: 'stream', text: 'Paris.', usage: { promptTokens: 1_000, completionTokens: 500 } },
        { type: 'completion', content: ACCEPT, usage: { promptTokens: 200, completionTokens: 20 } },
      );
      harness.discord.messageCreate({ content: `<@${harness.discord.bot.id}> capital of France?` });
      await harness.discord.waitForRequest((request) =>
        String(request.body?.content).includes('-# gpt-4o-mini'),
      );

      const interaction = harness.discord.chatInputCommand({ commandName: 'usage', subcommand: 'me' });
      const { original } = await settled(interaction.id, (text) => text.startsWith('Spent'));
      const lines = original?.content.split('\n') ?? [];
      // Draft 1,000 × $0.15/M + 500 × $0.60/M = 450; check 200 × $0.15/M + 20 × $0.60/M = 42: 492 micro-USD.
      expect(lines[0]).toBe('Spent $0.0005 of $1.0000 this month');
      expect(lines[1]).toMatch(/^\$0\.9995 left; resets \w{3} 1, 00:00 UTC$/);
      expect(original?.content).toContain('- GPT-4o Mini: 2 calls · 1,720 tokens · $0.0005');
      expect(original?.content).toContain('**Answers**: 1 · escalated to Claude Haiku: 0');
      expect(isPrivate(original)).toBe(true);

      const upload = harness.discord.requests.find(
        (request) => request.route === EDIT_ORIGINAL && request.files.length > 0,
      );
      const png = upload?.files[0]?.data ?? Buffer.alloc(0);
      expect(png.subarray(0, 8)).toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
      expect(png.toString('latin1', 12, 16)).toBe('IHDR');
      expect([png.readUInt32BE(16), png.readUInt32BE(20)]).toEqual([800, 400]);
      expect(upload?.files[0]?.name).toBe('spend.png');
    });

    it('when a user who never spoke asks for a day, then they see $0 this day and which budget they have', async () => {
      const interaction = harness.discord.chatInputCommand({
        commandName: 'usage',
        subcommand: 'me',
        options: { period: 'day' },
      });
      const { original } = await settled(interaction.id, (text) => text.startsWith('Spent'));
      expect(original?.content.split('\n')[0]).toBe('Spent $0.0000 this day (the budget is $1.0000 a month)');
      expect(original?.content).toContain('No model calls in this period.');
    });

    it("when a member looks at another member's usage, then it needs Manage Server", async () => {
      const refused = harness.discord.chatInputCommand({
        commandName: 'usage',
        subcommand: 'member',
        options: { user: harness.discord.owner.id },
      });
      expect(await privateAnswer(refused.id)).toMatch(/needs the Manage Server permission/);
      const allowed = harness.discord.chatInputCommand({
        commandName: 'usage',
        subcommand: 'member',
        options: { user: harness.discord.user.id },
        userId: admin(),
      });
      const { original } = await settled(allowed.id, (text) => text.startsWith('Spent'));
      expect(original?.content).toContain(`-# usage of ${harness.discord.user.username}`);
    });
  });

  describe('/budget', () => {
    it('when a member without Manage Server sets a budget, then they are refused and nothing is written', async () => {
      const interaction = harness.discord.chatInputCommand({
        commandName: 'budget',
        subcommand: 'set',
        options: { user: harness.discord.user.id, usd: 5 },
      });
      expect(await privateAnswer(interaction.id)).toMatch(/^\/budget needs the Manage Server permission/);
      expect(await storedBudgets()).toEqual({ budgets: [], audit: { rows: 0 } });
    });

    it.each([
      [-1, 'amounts cannot be negative'],
      [10_001, 'amounts go from $0 to $10,000'],
      [0.00001, 'at most 4 decimals'],
      [Number.NaN, 'must be a number of dollars'],
    ])(
      'when an admin sets %s dollars, then it is refused with the reason and nothing is written',
      async (usd, reason) => {
        const interaction = harness.discord.chatInputCommand({
          commandName: 'budget',
          subcommand: 'set',
          options: { user: harness.discord.user.id, usd },
          userId: admin(),
        });
        const text = await privateAnswer(interaction.id);
        expect(text).toMatch(/^Not changed: /);
        expect(text).toContain(reason);
        expect(await storedBudgets()).toEqual({ budgets: [], audit: { rows: 0 } });
      },
    );

    it('when an admin sets, defaults, caps, clears and shows, then each is stored, audited and shown', async () => {
      const run = async (subcommand: string, options: Record<string, string | number>) => {
        const interaction = harness.discord.chatInputCommand({
          commandName: 'budget',
          subcommand,
          options,
          userId: admin(),
        });
        return privateAnswer(interaction.id);
      };
      const member = harness.discord.user.id;
      expect(await run('set', { user: member, usd: 2.5, period: 'week' })).toBe(
        `Set <@${member}>'s budget to $2.5000 per week; was not set.`,
      );
      expect(await run('default', { usd: 1 })).toBe(
        'Set the default budget to $1.0000 per month; was not set.',
      );
      expect(await run('server', { usd: 50, period: 'day' })).toBe(
        "Set the server's cap to $50.0000 per day; was not set.",
      );
      expect(
        (
          await harness.app.storage.budgets.standings({ userId: member, guildId: harness.discord.guild.id })
        ).map((standing) => standing.source),
      ).toEqual(['own', 'server-cap']);
      expect(await run('clear', { user: member })).toBe(
        `Cleared <@${member}>'s budget (was $2.5000 per week); the highest of their roles' budgets, else the server's default, applies again.`,
      );
      const shown = await run('show', { user: member });
      expect(shown).toContain(`**Limits for <@${member}>**`);
      expect(shown).toContain("- Budget: $0.0000 of $1.0000 spent this month (the server's default)");
      expect(shown).toContain("- Server cap: $0.0000 of $50.0000 spent today (the server's cap)");
      expect(shown).toContain(`<@${admin()}> · budget of <@${member}>: $2.5000 per week → cleared`);
      expect(shown).toContain(`<@${admin()}> · server cap: not set → $50.0000 per day`);
      expect((await storedBudgets()).audit).toEqual({ rows: 4 });
    });

    it('when the member is a bot or not in this server, then it is refused and nothing is written', async () => {
      const robot = harness.discord.addUser({ username: 'robot', isBot: true });
      harness.discord.addMember(robot.id);
      const stranger = harness.discord.addUser({ username: 'stranger' });
      const other = harness.discord.addGuild({ name: 'elsewhere' });
      harness.discord.addMember(stranger.id, { guildId: other.id });
      for (const [userId, reason] of [
        [robot.id, 'is a bot'],
        [stranger.id, 'is not a member of this server'],
      ] as const) {
        const interaction = harness.discord.chatInputCommand({
          commandName: 'budget',
          subcommand: 'set',
          options: { user: userId, usd: 5 },
          userId: admin(),
        });
        expect(await privateAnswer(interaction.id)).toContain(reason);
      }
      expect(await storedBudgets()).toEqual({ budgets: [], audit: { rows: 0 } });
    });

    it('when used in a DM, then it says it needs a server', async () => {
      const interaction = harness.discord.chatInputCommand({
        commandName: 'budget',
        subcommand: 'show',
        channelId: harness.discord.directMessageChannel().id,
      });
      expect(await privateAnswer(interaction.id)).toBe('/budget works in a server, not in direct messages.');
    });
  });

  describe('/settings', () => {
    it('when an admin adds a channel, then the bot answers every message there without a mention', async () => {
      const channel = harness.discord.addTextChannel({ name: 'ask-the-bot' });
      const interaction = harness.discord.chatInputCommand({
        commandName: 'settings',
        subcommandGroup: 'channel',
        subcommand: 'add',
        options: { channel: channel.id },
        userId: admin(),
      });
      expect(await privateAnswer(interaction.id)).toBe(
        `Every message in <#${channel.id}> is answered now, without a mention.`,
      );

      harness.openai.script({ type: 'stream', text: 'Hi!' }, { type: 'completion', content: ACCEPT });
      harness.discord.messageCreate({ channelId: channel.id, content: 'hello, anyone?' });
      const answer = await harness.discord.waitForRequest((request: RecordedRequest) =>
        String(request.body?.content).includes('-# gpt-4o-mini'),
      );
      expect(answer.params.channel_id).toBe(channel.id);
    });

    it('when an admin lists and removes channels and hides the footer, then each is stored and answers follow it', async () => {
      const run = async (
        subcommand: string,
        options: Record<string, string | boolean>,
        subcommandGroup?: string,
      ) => {
        const interaction = harness.discord.chatInputCommand({
          commandName: 'settings',
          subcommand,
          ...(subcommandGroup ? { subcommandGroup } : {}),
          options,
          userId: admin(),
        });
        return privateAnswer(interaction.id);
      };
      const here = harness.discord.channel.id;
      expect(await run('add', {}, 'channel')).toBe(
        `Every message in <#${here}> is answered now, without a mention.`,
      );
      expect(await run('list', {}, 'channel')).toBe(`Answered without a mention: <#${here}>`);
      expect(await run('remove', {}, 'channel')).toBe(`<#${here}> is back to mentions and replies only.`);
      expect(await run('list', {}, 'channel')).toBe('No channels are answered without a mention.');
      expect(await run('footer', { show: false })).toMatch(/^Answers no longer show their footer/);

      harness.openai.script(
        { type: 'stream', text: 'Quiet answer.' },
        { type: 'completion', content: ACCEPT },
      );
      harness.discord.messageCreate({ content: `<@${harness.discord.bot.id}> hi` });
      const answer = await harness.discord.waitForRequest(
        (request) =>
          request.body?.components?.length > 0 && String(request.body?.content).startsWith('Quiet'),
      );
      expect(answer.body.content).toBe('Quiet answer.');
    });

    it('when a user listed in BOT_OPERATOR_IDS, without Manage Server, sets a budget, then it is allowed and audited', async () => {
      await harness.close();
      harness = await startBotHarness({
        before: (_discord, config) => registerCommands(config.discord).then(() => {}),
        environment: (discord) => ({ BOT_OPERATOR_IDS: discord.user.id }),
      });
      const interaction = harness.discord.chatInputCommand({
        commandName: 'budget',
        subcommand: 'default',
        options: { usd: 3 },
      });
      expect(await privateAnswer(interaction.id)).toBe(
        'Set the default budget to $3.0000 per month; was not set.',
      );
      expect((await harness.app.storage.budgets.auditLog(harness.discord.guild.id))[0]?.changedBy).toBe(
        harness.discord.user.id,
      );
    });

    it('when a member without Manage Server changes a setting, then they are refused and nothing changes', async () => {
      const interaction = harness.discord.chatInputCommand({
        commandName: 'settings',
        subcommand: 'escalation',
        options: { mode: 'off' },
      });
      expect(await privateAnswer(interaction.id)).toMatch(/^\/settings needs the Manage Server permission/);
      expect((await harness.app.storage.settings.of(harness.discord.guild.id)).escalationMode).toBe('auto');
    });

    it("when escalation is off, then answers carry no Escalate button; and when the server's spending crosses 80% of its cap, then its alerts channel is told once", async () => {
      const alerts = harness.discord.addTextChannel({ name: 'bot-alerts' });
      for (const [subcommand, options] of [
        ['escalation', { mode: 'off' }],
        ['alerts', { channel: alerts.id }],
      ] as const) {
        const interaction = harness.discord.chatInputCommand({
          commandName: 'settings',
          subcommand,
          options,
          userId: admin(),
        });
        await privateAnswer(interaction.id);
      }
      await harness.app.storage.budgets.setBudget(
        { guildId: harness.discord.guild.id, scope: 'server-total', changedBy: admin() },
        { amountMicros: 10_000, period: 'month' },
      );
      // 50,000 × $0.15/M + 1,000 × $0.60/M = 8,100 of 10,000 (81%), then 75 more (81.75%). Mode off: no check.
      for (const [text, promptTokens, completionTokens] of [
        ['one', 50_000, 1_000],
        ['two', 100, 100],
      ] as const) {
        harness.openai.script({ type: 'stream', text, usage: { promptTokens, completionTokens } });
        harness.discord.messageCreate({ content: `<@${harness.discord.bot.id}> ${text}?` });
        const answer = await harness.discord.waitForRequest((request) =>
          String(request.body?.content).startsWith(`${text}\n-#`),
        );
        expect(answer.body.components ?? []).toEqual([]);
      }
      await harness.bot.stop();
      expect(harness.discord.messagesIn(alerts.id).map((message) => message.content)).toEqual([
        expect.stringMatching(
          /^⚠️ 80% of this server's budget used \(\$0\.0081 of \$0\.0100 this month\); resets /,
        ),
      ]);
    });
  });

  it('every command has a handler and a registration', () => {
    expect(COMMANDS.map((command) => command.data.name)).toEqual([
      'ask',
      'escalate',
      'usage',
      'budget',
      'settings',
    ]);
  });
});
