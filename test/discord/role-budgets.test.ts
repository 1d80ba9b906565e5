import { MessageFlags, PermissionFlagsBits } from 'discord.js';
import { describe, expect, it } from 'vitest';
import { registerCommands } from '../../src/discord/commands/register.js';
import { MEMBERS_PER_GUILD } from '../../src/discord/client.js';
import type { RecordedRequest } from '../fakes/discord/index.js';
import { ACCEPT, type BotHarness, botPerTest, until } from '../support/bot.js';
import { BACKENDS } from '../support/databases.js';
import type { SplitOpenAI } from '../fakes/openai-router.js';

/*
 * Role budgets as admins set them and members meet them: through the real bot and discord.js against the
 * loopback Discord, whose MESSAGE_CREATE and INTERACTION_CREATE payloads carry the author's `member.roles`
 * as Discord's do. Which budget applies is read off what the bot tells a member it denies (the amount of
 * their budget) and off /budget show; every change lands in the audit log.
 *
 * A draft's worst case with the default 1,024 output tokens is over $0.0006, so budgets of $0.0001 to
 * $0.0005 turn every question away at once without calling a model, and the denial names the budget.
 */

const startBot = botPerTest({ splitOpenAI: true });

const isReply = (request: RecordedRequest) => request.route === 'POST /channels/:channel_id/messages';

describe.each(BACKENDS)('Role budgets, on %s', (backend) => {
  const start = (environment: Record<string, string> = {}, bot: { turnsInFlight?: number } = {}) =>
    startBot({
      backend,
      environment,
      bot,
      before: (_discord, config) => registerCommands(config.discord).then(() => {}),
    });

  /** Runs a /budget subcommand as the server's owner and returns the private answer's text. */
  async function budget(
    harness: BotHarness<SplitOpenAI>,
    subcommand: string,
    options: Record<string, string | number> = {},
    userId = harness.discord.owner.id,
  ): Promise<string> {
    const interaction = harness.discord.chatInputCommand({
      commandName: 'budget',
      subcommand,
      options,
      userId,
    });
    return privateAnswer(harness, interaction.id);
  }

  async function privateAnswer(harness: BotHarness<SplitOpenAI>, interactionId: string): Promise<string> {
    let message: { content?: string; flags?: number } | undefined;
    await until(() => {
      const { original, followUps } = harness.discord.interactionResponses(interactionId);
      message = [original, ...followUps].find((candidate) => candidate?.content);
      return message !== undefined;
    });
    expect(((message?.flags ?? 0) & MessageFlags.Ephemeral) !== 0).toBe(true);
    return message?.content ?? '';
  }

  /** The member mentions the bot; resolves with the budget amount its denial names ("of $0.0002"). */
  async function budgetMetByMessage(harness: BotHarness<SplitOpenAI>, authorId: string): Promise<string> {
    const { discord } = harness;
    const question = discord.messageCreate({ authorId, content: `<@${discord.bot.id}> what is a monad?` });
    const reply = await discord.waitForRequest(
      (request) => isReply(request) && request.body?.message_reference?.message_id === question.id,
    );
    return amountIn(String(reply.body.content));
  }

  /** The same through /ask: the INTERACTION_CREATE payload's member. */
  async function budgetMetByAsk(harness: BotHarness<SplitOpenAI>, userId: string): Promise<string> {
    const interaction = harness.discord.chatInputCommand({
      commandName: 'ask',
      options: { prompt: 'what is a monad?' },
      userId,
    });
    return amountIn(await privateAnswer(harness, interaction.id));
  }

  function amountIn(denial: string): string {
    const match = /^Not enough left in your budget: \$0\.0000 of (\$[\d.]+) spent this month/.exec(denial);
    if (!match?.[1]) throw new Error(`not a denial of the member's budget: ${denial}`);
    return match[1];
  }

  it('when a member has two budgeted roles, then the higher applies; their own beats both; clearing falls back; every change is audited', async () => {
    const harness = await start({ DEFAULT_USER_BUDGET_USD: '0.0005' });
    const { discord } = harness;
    const helpers = discord.addRole({ name: 'helpers', permissions: 0n });
    const patrons = discord.addRole({ name: 'patrons', permissions: 0n });
    const member = discord.addUser({ username: 'bob' });
    discord.addMember(member.id, { roleIds: [helpers.id, patrons.id] });

    expect(await budget(harness, 'role', { role: helpers.id, usd: 0.0001 })).toBe(
      `Set <@&${helpers.id}>'s budget to $0.0001 per month; was not set.`,
    );
    expect(await budget(harness, 'role', { role: patrons.id, usd: 0.0002 })).toBe(
      `Set <@&${patrons.id}>'s budget to $0.0002 per month; was not set.`,
    );
    // The higher of the two, by message and by command.
    expect(await budgetMetByMessage(harness, member.id)).toBe('$0.0002');
    expect(await budgetMetByAsk(harness, member.id)).toBe('$0.0002');
    const shown = await budget(harness, 'show', { user: member.id });
    expect(shown).toContain(`- Budget: $0.0000 of $0.0002 spent this month (<@&${patrons.id}>'s); resets`);
    expect(shown).toContain(
      `- Why: no budget of their own; the highest of their roles' budgets (<@&${patrons.id}> $0.0002 per month, <@&${helpers.id}> $0.0001 per month), compared per day`,
    );

    // Their own budget comes first, even below a role's.
    await budget(harness, 'set', { user: member.id, usd: 0.0001 });
    expect(await budgetMetByMessage(harness, member.id)).toBe('$0.0001');
    expect(await budget(harness, 'show', { user: member.id })).toContain(
      "- Why: their own budget, which comes before their roles' (",
    );
    await budget(harness, 'clear', { user: member.id });
    expect(await budgetMetByMessage(harness, member.id)).toBe('$0.0002');

    // Clearing the higher role falls back to the other; clearing both, to the server's default, then the bot's.
    expect(await budget(harness, 'role-clear', { role: patrons.id })).toBe(
      `Cleared <@&${patrons.id}>'s budget (was $0.0002 per month); its members fall back to their own budget, another role's or the server's default.`,
    );
    expect(await budgetMetByMessage(harness, member.id)).toBe('$0.0001');
    await budget(harness, 'role-clear', { role: helpers.id });
    await budget(harness, 'default', { usd: 0.0003 });
    expect(await budgetMetByAsk(harness, member.id)).toBe('$0.0003');
    expect(await budget(harness, 'show', { user: member.id })).toContain(
      "- Why: no budget of their own and none of their roles has one: the server's default",
    );
    expect(await budget(harness, 'role-clear', { role: helpers.id })).toBe(
      `<@&${helpers.id}>'s budget was not set; nothing changed.`,
    );

    // A member without roles never got a role's budget.
    expect(await budgetMetByMessage(harness, discord.user.id)).toBe('$0.0003');
    expect(harness.openai.drafts.requests).toHaveLength(0);

    const audit = await harness.database.query<{ scope: string; user_id: string; new_amount: number | null }>(
      `SELECT scope, user_id, new_amount_micros AS new_amount FROM budget_audit ORDER BY id`,
    );
    expect(audit).toEqual([
      { scope: 'role', user_id: helpers.id, new_amount: 100 },
      { scope: 'role', user_id: patrons.id, new_amount: 200 },
      { scope: 'user', user_id: member.id, new_amount: 100 },
      { scope: 'user', user_id: member.id, new_amount: null },
      { scope: 'role', user_id: patrons.id, new_amount: null },
      { scope: 'role', user_id: helpers.id, new_amount: null },
      { scope: 'server-default', user_id: '', new_amount: 300 },
    ]);
    const overview = await budget(harness, 'show');
    expect(overview).toContain(
      `<@${discord.owner.id}> · budget of <@&${patrons.id}>: $0.0002 per month → cleared`,
    );
    expect(overview).toContain(
      `<@${discord.owner.id}> · budget of <@&${helpers.id}>: not set → $0.0001 per month`,
    );
  });

  it('when /budget show has no member, then it lists the role budgets, most generous per day first', async () => {
    const harness = await start();
    const { discord } = harness;
    const monthly = discord.addRole({ name: 'monthly', permissions: 0n });
    const daily = discord.addRole({ name: 'daily', permissions: 0n });
    await budget(harness, 'role', { role: monthly.id, usd: 20, period: 'month' });
    await budget(harness, 'role', { role: daily.id, usd: 1, period: 'day' });
    const shown = await budget(harness, 'show');
    expect(shown).toContain(
      `**Role budgets** (a member gets their own budget, else the highest of their roles’)\n- <@&${daily.id}>: $1.0000 per day\n- <@&${monthly.id}>: $20.0000 per month\n`,
    );
  });

  it('when an admin gives @everyone, a managed role, or a bad amount a budget, then it is refused with the reason and nothing is written', async () => {
    const harness = await start();
    const { discord } = harness;
    const role = discord.addRole({ name: 'helpers', permissions: 0n });
    const botRoleId = discord.world.guild(discord.guild.id).botRoleId;
    expect(await budget(harness, 'role', { role: discord.guild.id, usd: 5 })).toMatch(
      /^Not changed: @everyone is every member; use `\/budget default`/,
    );
    expect(await budget(harness, 'role', { role: botRoleId, usd: 5 })).toBe(
      `Not changed: <@&${botRoleId}> is managed by an integration (a bot's or a subscription's own role); budgets are for roles people are given.`,
    );
    expect(await budget(harness, 'role', { role: role.id, usd: 0.00001 })).toMatch(
      /^Not changed: amounts have at most 4 decimals/,
    );
    expect(await budget(harness, 'role', { role: role.id, usd: 10_001 })).toMatch(
      /^Not changed: amounts go from \$0 to \$10,000/,
    );
    expect(await budget(harness, 'role', { role: role.id, usd: 5 }, discord.user.id)).toMatch(
      /^\/budget needs the Manage Server permission/,
    );
    expect(await budget(harness, 'role-clear', { role: discord.guild.id })).toMatch(
      /^Not changed: @everyone/,
    );
    expect(await harness.database.value('SELECT COUNT(*) FROM budgets')).toBe(0);
    expect(await harness.database.value('SELECT COUNT(*) FROM budget_audit')).toBe(0);
  });

  it("when a message waits while more than the member cache's worth of others post, then its author's role budget still applies", async () => {
    // One answer at a time: the role-budgeted member's message waits behind a slow one, while enough
    // other members post to push them out of discord.js's member cache (MEMBERS_PER_GUILD a server).
    const harness = await start({ DEFAULT_USER_BUDGET_USD: '10' }, { turnsInFlight: 1 });
    const { discord, openai } = harness;
    const limited = discord.addRole({ name: 'limited', permissions: 0n });
    const member = discord.addUser({ username: 'bob' });
    discord.addMember(member.id, { roleIds: [limited.id] });
    await budget(harness, 'role', { role: limited.id, usd: 0.0001 });

    openai.drafts.script({ type: 'stream', text: 'Slowly, then.', firstChunkDelayMs: 1_500 });
    openai.checks.script({ type: 'completion', content: ACCEPT });
    discord.messageCreate({ content: `<@${discord.bot.id}> take your time` });
    await until(() => openai.drafts.requests.length === 1);
    const waiting = discord.messageCreate({ authorId: member.id, content: `<@${discord.bot.id}> and me?` });
    for (let index = 0; index <= MEMBERS_PER_GUILD; index += 1) {
      const chatter = discord.addUser({ username: `chatter-${index}` });
      discord.addMember(chatter.id);
      discord.messageCreate({ authorId: chatter.id, content: 'just chatting' });
    }

    const reply = await discord.waitForRequest(
      (request) => isReply(request) && request.body?.message_reference?.message_id === waiting.id,
      { timeoutMs: 20_000 },
    );
    expect(amountIn(String(reply.body.content))).toBe('$0.0001');
    expect(openai.drafts.requests).toHaveLength(1);
  });

  it("when a member whose only budget is a role's sends a burst of messages and /ask commands at its edge, then settled spend never exceeds it", async () => {
    // Drafts bill 90% of the 400 output tokens they reserve, so the budget is really reached; the bot's
    // default is far above it, so a role that went missing anywhere would show as overspending.
    const harness = await start({ DEFAULT_USER_BUDGET_USD: '10', MAX_OUTPUT_TOKENS: '400' });
    const { discord, openai } = harness;
    const role = discord.addRole({ name: 'patrons', permissions: PermissionFlagsBits.SendMessages });
    const member = discord.addUser({ username: 'bob' });
    discord.addMember(member.id, { roleIds: [role.id] });
    const budgetMicros = 1_000;
    await budget(harness, 'role', { role: role.id, usd: budgetMicros / 1_000_000 });

    const mentions = 5; // two answered at once and three waiting: what one person may have queued
    const asks = 10;
    for (let index = 0; index < mentions + asks; index += 1) {
      openai.drafts.script({
        type: 'stream',
        text: 'A monad sequences computations.',
        chunkDelayMs: 5,
        usage: { promptTokens: 20, completionTokens: 360 },
      });
      openai.checks.script({
        type: 'completion',
        content: ACCEPT,
        usage: { promptTokens: 40, completionTokens: 20 },
      });
    }
    for (let index = 0; index < mentions; index += 1) {
      discord.messageCreate({ authorId: member.id, content: `<@${discord.bot.id}> question ${index}` });
    }
    for (let index = 0; index < asks; index += 1) {
      discord.chatInputCommand({
        commandName: 'ask',
        options: { prompt: `question ${index}` },
        userId: member.id,
      });
    }
    const turnLines = () => harness.logs.filter((line) => line.msg === 'turn done');
    await until(() => turnLines().length === mentions + asks);

    const statuses = turnLines().map((line) => line.status);
    expect(statuses).toContain('answered');
    expect(statuses).toContain('denied');
    await harness.app.storage.flush();
    const spentMicros = await harness.database.value(
      'SELECT COALESCE(SUM(cost_micros), 0) FROM usage_ledger WHERE user_id = $1',
      [member.id],
    );
    expect(spentMicros).toBeGreaterThan(0);
    expect(spentMicros).toBeLessThanOrEqual(budgetMicros);
    expect(await harness.database.value('SELECT COUNT(*) FROM reservations')).toBe(0);
  });
});
