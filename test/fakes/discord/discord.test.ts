import { once } from 'node:events';
import {
  ActionRowBuilder,
  ButtonBuilder,
  ButtonStyle,
  ChannelType,
  Client,
  type ClientEvents,
  type ClientOptions,
  DiscordAPIError,
  Events,
  GatewayIntentBits,
  MessageFlags,
  MessageType,
  OverwriteType,
  Partials,
  PermissionFlagsBits,
  REST,
  Routes,
  StringSelectMenuBuilder,
  type TextChannel,
  ThreadAutoArchiveDuration,
} from 'discord.js';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type FakeDiscord, type FakeDiscordOptions, startFakeDiscord } from './index.js';

/** Short, so heartbeats (and their ACKs) happen within a test. */
const HEARTBEAT_INTERVAL_MS = 150;
const BOT_INTENTS = [
  GatewayIntentBits.Guilds,
  GatewayIntentBits.GuildMessages,
  GatewayIntentBits.MessageContent,
  GatewayIntentBits.DirectMessages,
];

let fake: FakeDiscord;
let client: Client;

async function start(
  options: FakeDiscordOptions = {},
  intents = BOT_INTENTS,
  clientOptions: Partial<ClientOptions> = {},
): Promise<void> {
  fake = await startFakeDiscord({ heartbeatIntervalMs: HEARTBEAT_INTERVAL_MS, ...options });
  const { rest, ...otherOptions } = clientOptions;
  client = new Client({
    intents,
    partials: [Partials.Channel],
    ...otherOptions,
    rest: { api: fake.apiUrl, ...rest },
  });
}

async function logIn(): Promise<void> {
  const ready = nextEvent(Events.ClientReady);
  await client.login(fake.token);
  await ready;
}

function nextEvent<Event extends keyof ClientEvents>(event: Event, timeoutMs = 5_000) {
  return once(client, event, { signal: AbortSignal.timeout(timeoutMs) }) as Promise<ClientEvents[Event]>;
}

/** Collects the next `count` messageCreate events (the bot's own echoes included). */
function nextMessages(count: number, timeoutMs = 5_000) {
  return new Promise<ClientEvents[Events.MessageCreate][0][]>((resolve, reject) => {
    const messages: ClientEvents[Events.MessageCreate][0][] = [];
    const timer = setTimeout(() => {
      client.off(Events.MessageCreate, listener);
      reject(new Error(`got ${messages.length} of ${count} messages`));
    }, timeoutMs);
    const listener = (message: ClientEvents[Events.MessageCreate][0]) => {
      messages.push(message);
      if (messages.length < count) return;
      clearTimeout(timer);
      client.off(Events.MessageCreate, listener);
      resolve(messages);
    };
    client.on(Events.MessageCreate, listener);
  });
}

function general(): TextChannel {
  return client.channels.cache.get(fake.channel.id) as TextChannel;
}

afterEach(async () => {
  await client?.destroy();
  await fake?.close();
});

describe('logging in', () => {
  beforeEach(() => start());

  it('when the bot logs in, then ClientReady fires with the server, its channel and the bot member cached', async () => {
    await logIn();

    expect(client.user?.id).toBe(fake.bot.id);
    expect(client.application?.id).toBe(fake.applicationId);
    const guild = client.guilds.cache.get(fake.guild.id);
    expect(guild?.name).toBe('Tierbot Test Server');
    expect(guild?.available).toBe(true);
    const channel = guild!.channels.cache.get(fake.channel.id)!;
    expect(channel.name).toBe('general');
    const me = guild!.members.me!;
    expect(me.id).toBe(fake.bot.id);
    expect(channel.permissionsFor(me).has(PermissionFlagsBits.SendMessages)).toBe(true);

    expect(fake.identifies).toHaveLength(1);
    expect(fake.identifies[0]?.intents).toBe(BOT_INTENTS.reduce((all, bit) => all | bit, 0));
    expect(fake.events[0]).toMatchObject({
      type: 'connect',
      path: '/',
      query: { v: '10', encoding: 'json' },
    });
    const gatewayInfo = fake.requests.find((request) => request.route === 'GET /gateway/bot');
    expect(gatewayInfo?.headers.authorization).toBe(`Bot ${fake.token}`);
    fake.assertNothingUnexpected();
  });

  it('when the bot heartbeats, then the fake acknowledges and discord.js measures a ping', async () => {
    await logIn();

    await fake.waitForEvent((event) => event.type === 'received' && event.op === 1);
    await fake.waitForEvent((event) => event.type === 'sent' && event.op === 11);

    await expect.poll(() => client.ws.ping).toBeGreaterThanOrEqual(0);
  });

  it('when the token is wrong, then REST answers 401 and login fails', async () => {
    await expect(client.login('not-the-token')).rejects.toThrow(/token/i);

    expect(fake.unexpected.map((request) => request.status)).toEqual([401]);
  });

  it('when the token was reset, then REST answers 401 as Discord does and login fails with TokenInvalid', async () => {
    fake.resetToken();

    await expect(client.login(fake.token)).rejects.toMatchObject({ code: 'TokenInvalid' });

    const gatewayInfo = fake.requests.find((request) => request.route === 'GET /gateway/bot');
    expect(gatewayInfo).toMatchObject({
      status: 401,
      responseBody: { message: '401: Unauthorized', code: 0 },
    });
    expect(fake.identifies).toEqual([]);
    fake.assertNothingUnexpected();
  });

  it('when the token is reset before IDENTIFY, then the gateway closes with 4004 and REST refuses it from then on', async () => {
    fake.resetToken({ from: 'identify' });
    const disconnected = nextEvent(Events.ShardDisconnect);

    await expect(client.login(fake.token)).rejects.toThrow('Authentication failed');

    expect((await disconnected)[0].code).toBe(4004);
    const closed = await fake.waitForEvent((event) => event.type === 'closed' && event.code === 4004);
    expect(closed).toMatchObject({ reason: 'Authentication failed.', by: 'fake' });
    const rest = new REST({ api: fake.apiUrl }).setToken(fake.token);
    await expect(rest.get(Routes.user())).rejects.toMatchObject({ status: 401 });
    rest.clearHashSweeper();
    rest.clearHandlerSweeper();
    fake.assertNothingUnexpected();
  });

  it('when a REST-only client posts without a gateway session, then the message is stored and nothing is dispatched', async () => {
    client.rest.setToken(fake.token);

    await client.rest.post(`/channels/${fake.channel.id}/messages`, { body: { content: 'from a script' } });
    await new Promise((resolve) => setImmediate(resolve));

    expect(fake.messagesIn(fake.channel.id).map((message) => message.content)).toEqual(['from a script']);
    fake.assertNothingUnexpected();
  });

  it('when the client is destroyed, then it closes its socket with 1000 and nothing stays open', async () => {
    await logIn();

    await client.destroy();

    expect(fake.openConnections).toBe(0);
    expect(fake.events.at(-1)).toMatchObject({ type: 'closed', code: 1000, by: 'bot' });
  });
});

describe('messages', () => {
  beforeEach(async () => {
    await start();
    await logIn();
  });

  it('when a user posts in a server channel, then messageCreate sees its content, author and mentions', async () => {
    const received = nextEvent(Events.MessageCreate);

    const sent = fake.messageCreate({ content: `<@${fake.bot.id}> what is a monad?` });

    const [message] = await received;
    expect(message.id).toBe(sent.id);
    expect(message.content).toBe(`<@${fake.bot.id}> what is a monad?`);
    expect(message.author.id).toBe(fake.user.id);
    expect(message.author.bot).toBe(false);
    expect(message.member?.id).toBe(fake.user.id);
    expect(message.guildId).toBe(fake.guild.id);
    expect(message.channel.type).toBe(ChannelType.GuildText);
    expect(message.mentions.users.has(fake.bot.id)).toBe(true);
  });

  it('when the bot replies without pinging and then edits, then the fake records both and stores the edit', async () => {
    const question = fake.messageCreate({ content: 'What is a monad?' });
    const [message] = await nextEvent(Events.MessageCreate);

    const reply = await message.reply({
      content: `<@${fake.user.id}> thinking…`,
      allowedMentions: { parse: [], repliedUser: false },
    });

    const post = await fake.waitForRequest('POST /channels/:channel_id/messages');
    expect(post.params.channel_id).toBe(fake.channel.id);
    expect(post.headers.authorization).toBe(`Bot ${fake.token}`);
    expect(post.body).toMatchObject({
      content: `<@${fake.user.id}> thinking…`,
      allowed_mentions: { parse: [], replied_user: false },
      message_reference: { message_id: question.id, fail_if_not_exists: true },
    });
    expect(reply.author.id).toBe(fake.bot.id);
    expect(reply.reference?.messageId).toBe(question.id);
    expect(reply.mentions.users.size).toBe(0);

    const edited = await reply.edit('A monad is a monoid in the category of endofunctors.');

    const patch = await fake.waitForRequest('PATCH /channels/:channel_id/messages/:message_id');
    expect(patch.params.message_id).toBe(reply.id);
    expect(edited.editedTimestamp).not.toBeNull();
    expect(fake.messagesIn(fake.channel.id).map((stored) => stored.content)).toEqual([
      'What is a monad?',
      'A monad is a monoid in the category of endofunctors.',
    ]);
    fake.assertNothingUnexpected();
  });

  it('when the bot posts, then Discord echoes its own message back on the gateway', async () => {
    const echoed = nextEvent(Events.MessageCreate);

    const sent = await general().send('hello');

    const [message] = await echoed;
    expect(message.id).toBe(sent.id);
    expect(message.author.id).toBe(fake.bot.id);
  });

  it('when a user replies to the bot, then the reply references the stored bot message', async () => {
    const sent = await general().send('Ask me anything.');
    await nextEvent(Events.MessageCreate); // the echo

    const received = nextEvent(Events.MessageCreate);
    fake.messageCreate({ content: 'Why?', replyTo: sent.id });

    const [message] = await received;
    expect(message.reference?.messageId).toBe(sent.id);
    const referenced = await message.fetchReference();
    expect(referenced.content).toBe('Ask me anything.');
    expect(message.mentions.repliedUser?.id).toBe(fake.bot.id);
  });

  it('when a user DMs the bot, then messageCreate sees a DM channel and the bot can answer there', async () => {
    const received = nextEvent(Events.MessageCreate);

    const sent = fake.directMessageCreate({ content: 'psst' });

    const [message] = await received;
    expect(message.content).toBe('psst');
    expect(message.channel.type).toBe(ChannelType.DM);
    expect(message.guildId).toBeNull();
    await message.channel.send('hello in private');
    const post = await fake.waitForRequest('POST /channels/:channel_id/messages');
    expect(post.params.channel_id).toBe(sent.channel_id);
  });

  it('when the bot DMs a user first, then it opens the DM channel and sends there', async () => {
    const bob = fake.addUser({ username: 'bob' });

    await client.users.send(bob.id, 'your budget resets tomorrow');

    const opened = await fake.waitForRequest('POST /users/@me/channels');
    expect(opened.body).toEqual({ recipient_id: bob.id });
    expect(fake.messagesIn(fake.directMessageChannel(bob.id).id).map((stored) => stored.content)).toEqual([
      'your budget resets tomorrow',
    ]);
  });

  it('when a user has closed DMs, then sending fails with 50007', async () => {
    const carol = fake.addUser({ username: 'carol', acceptsDirectMessages: false });

    await expect(client.users.send(carol.id, 'hi')).rejects.toMatchObject({ code: 50007, status: 403 });
  });

  it('when a user opens a thread and posts in it, then the bot sees a thread channel', async () => {
    const threadCreated = nextEvent(Events.ThreadCreate);
    const thread = fake.createThread({ name: 'monads' });
    const [threadChannel, isNew] = await threadCreated;
    expect(threadChannel.id).toBe(thread.id);
    expect(isNew).toBe(true);

    const received = nextEvent(Events.MessageCreate);
    fake.messageCreate({ content: 'in the thread', channelId: thread.id });

    const [message] = await received;
    expect(message.channel.isThread()).toBe(true);
    expect(message.channel.type).toBe(ChannelType.PublicThread);
    expect((message.channel as typeof threadChannel).ownerId).toBe(fake.user.id);
    expect((message.channel as typeof threadChannel).parentId).toBe(fake.channel.id);
  });

  it('when the bot uploads a file, then the fake records its name and size and serves it back', async () => {
    const sent = await general().send({
      content: 'the transcript',
      files: [{ attachment: Buffer.from('hello world'), name: 'transcript.txt' }],
    });

    const post = await fake.waitForRequest('POST /channels/:channel_id/messages');
    expect(post.headers['content-type']).toMatch(/^multipart\/form-data/);
    expect(post.body.content).toBe('the transcript');
    expect(post.files.map(({ field, name, size }) => ({ field, name, size }))).toEqual([
      { field: 'files[0]', name: 'transcript.txt', size: 11 },
    ]);
    const attachment = sent.attachments.first()!;
    expect(attachment.name).toBe('transcript.txt');
    expect(await (await fetch(attachment.url)).text()).toBe('hello world');
  });

  it('when a message is too long, then Discord refuses it with 50035 and nothing is stored', async () => {
    const error = await general()
      .send('x'.repeat(2001))
      .catch((caught: unknown) => caught);

    expect(error).toBeInstanceOf(DiscordAPIError);
    expect(error).toMatchObject({ code: 50035, status: 400 });
    expect((error as Error).message).toContain('content[BASE_TYPE_MAX_LENGTH]');
    expect(fake.messagesIn(fake.channel.id)).toEqual([]);
  });

  it('when the bot may not send in a channel, then discord.js and the fake agree and sending fails with 50013', async () => {
    const created = nextEvent(Events.ChannelCreate);
    const readOnly = fake.addTextChannel({
      name: 'announcements',
      overwrites: [
        {
          id: fake.guild.botRoleId,
          type: OverwriteType.Role,
          allow: '0',
          deny: PermissionFlagsBits.SendMessages.toString(),
        },
      ],
    });
    const [channel] = await created;

    expect(
      (channel as TextChannel).permissionsFor(client.user!.id)?.has(PermissionFlagsBits.SendMessages),
    ).toBe(false);
    await expect((channel as TextChannel).send('hi')).rejects.toMatchObject({ code: 50013, status: 403 });
    expect(fake.messagesIn(readOnly.id)).toEqual([]);
  });

  it('when Discord answers 500 once, then discord.js retries and the message lands once', async () => {
    fake.failNext('POST /channels/:channel_id/messages', {
      status: 500,
      code: 0,
      message: '500: Internal Server Error',
    });

    await general().send('hello');

    const posts = fake.requests.filter((request) => request.route === 'POST /channels/:channel_id/messages');
    expect(posts.map((request) => request.status)).toEqual([500, 200]);
    expect(fake.messagesIn(fake.channel.id).map((message) => message.content)).toEqual(['hello']);
  });

  it('when the bot fetches history, then it gets the newest messages first, paged by limit and before', async () => {
    const sent = ['one', 'two', 'three', 'four'].map((content) => fake.messageCreate({ content }));

    const page = await general().messages.fetch({ limit: 2, before: sent[3]!.id, cache: false });

    expect([...page.values()].map((message) => message.content)).toEqual(['three', 'two']);
    const request = await fake.waitForRequest('GET /channels/:channel_id/messages');
    expect(request.query).toEqual({ limit: '2', before: sent[3]!.id });
  });

  it('when the bot reacts to a message, then the reaction is stored on it', async () => {
    const received = nextEvent(Events.MessageCreate);
    fake.messageCreate({ content: 'react to me' });
    const [message] = await received;

    await message.react('👍');

    const put = await fake.waitForRequest(
      'PUT /channels/:channel_id/messages/:message_id/reactions/:emoji/@me',
    );
    expect(put.params.emoji).toBe('👍');
    expect(fake.messagesIn(fake.channel.id)[0]?.reactions).toMatchObject([
      { emoji: { name: '👍' }, me: true },
    ]);
  });

  it('when the bot starts a thread from a message, then the thread takes the message id and the bot owns it', async () => {
    const received = nextEvent(Events.MessageCreate);
    const question = fake.messageCreate({ content: 'long question' });
    const [message] = await received;
    const updated = nextEvent(Events.MessageUpdate);

    const thread = await message.startThread({
      name: 'long question',
      autoArchiveDuration: ThreadAutoArchiveDuration.OneHour,
    });
    await thread.send('Let us talk here.');

    expect(thread.id).toBe(question.id);
    expect(thread.type).toBe(ChannelType.PublicThread);
    expect(thread.parentId).toBe(fake.channel.id);
    expect(thread.ownerId).toBe(fake.bot.id);
    expect(thread.autoArchiveDuration).toBe(ThreadAutoArchiveDuration.OneHour);
    const start = await fake.waitForRequest('POST /channels/:channel_id/messages/:message_id/threads');
    expect(start.status).toBe(201);
    expect(start.responseBody).toMatchObject({ type: ChannelType.PublicThread, parent_id: fake.channel.id });
    // As on Discord: THREAD_CREATE, then MESSAGE_UPDATE marking the message as having a thread.
    await fake.waitForEvent((event) => event.type === 'sent' && event.t === 'THREAD_CREATE');
    const [, after] = await updated;
    expect(after.hasThread).toBe(true);
    // The thread opens with a system message pointing back at the message in the parent channel.
    const [starter, sent] = fake.messagesIn(question.id);
    expect(starter).toMatchObject({
      type: MessageType.ThreadStarterMessage,
      content: '',
      message_reference: { message_id: question.id, channel_id: fake.channel.id },
    });
    expect(sent?.content).toBe('Let us talk here.');
    const fetched = await thread.messages.fetch();
    expect(fetched.get(starter!.id)?.system).toBe(true);
    expect((await thread.fetchStarterMessage())?.content).toBe('long question');
  });

  it('when the bot starts a second thread from one message, then Discord refuses with 160004', async () => {
    const received = nextEvent(Events.MessageCreate);
    const question = fake.messageCreate({ content: 'twice' });
    const [message] = await received;
    await message.startThread({ name: 'first' });

    const second = client.rest.post(Routes.threads(fake.channel.id, question.id), {
      body: { name: 'again' },
    });

    await expect(second).rejects.toMatchObject({ status: 400, code: 160004 });
  });

  it('when the bot may not create public threads in a channel, then starting one is refused with 50013 and the bot may still answer there', async () => {
    const received = nextEvent(Events.MessageCreate);
    fake.messageCreate({ content: 'no threads here' });
    const [message] = await received;
    const channelUpdated = nextEvent(Events.ChannelUpdate);
    fake.setBotPermissions({ deny: PermissionFlagsBits.CreatePublicThreads });
    await channelUpdated;

    await expect(message.startThread({ name: 'denied' })).rejects.toMatchObject({ status: 403, code: 50013 });
    await expect(message.reply('still here')).resolves.toMatchObject({ content: 'still here' });
    expect(
      (client.channels.cache.get(fake.channel.id) as TextChannel)
        .permissionsFor(fake.bot.id)
        ?.has(PermissionFlagsBits.CreatePublicThreads),
    ).toBe(false);
  });

  it('when the bot may not send in threads, then it opens one but its message there is refused with 50013', async () => {
    fake.setBotPermissions({ deny: PermissionFlagsBits.SendMessagesInThreads });
    const received = nextEvent(Events.MessageCreate);
    fake.messageCreate({ content: 'open, but quiet' });
    const [message] = await received;

    const thread = await message.startThread({ name: 'quiet' });

    await expect(thread.send('hello')).rejects.toMatchObject({ status: 403, code: 50013 });
  });

  it('when the bot starts a thread from a message in an announcement channel, then it is an announcement thread', async () => {
    const news = fake.addAnnouncementChannel({ name: 'news' });
    await fake.waitForEvent((event) => event.type === 'sent' && event.t === 'CHANNEL_CREATE');
    const received = nextEvent(Events.MessageCreate);
    const posted = fake.messageCreate({ content: 'release notes', channelId: news.id });
    const [message] = await received;

    const thread = await message.startThread({ name: 'release notes' });

    expect(thread.id).toBe(posted.id);
    expect(thread.type).toBe(ChannelType.AnnouncementThread);
  });

  it('when the bot requests members over the gateway, then a GUILD_MEMBERS_CHUNK answers', async () => {
    const members = await client.guilds.cache.get(fake.guild.id)!.members.fetch({ user: [fake.user.id] });

    expect([...members.keys()]).toEqual([fake.user.id]);
    expect(fake.events).toContainEqual(expect.objectContaining({ type: 'received', op: 8 }));
  });

  it('when the bot calls an endpoint the fake does not know, then it gets 404 and the call is recorded', async () => {
    await expect(client.rest.get('/guilds/1/audit-logs/nope')).rejects.toMatchObject({ status: 404 });

    expect(fake.unexpected.map((request) => request.path)).toEqual(['/api/v10/guilds/1/audit-logs/nope']);
  });
});

describe('the MESSAGE_CONTENT intent', () => {
  it('when the bot did not ask for it, then other people’s messages arrive blank unless they mention it', async () => {
    await start({}, [GatewayIntentBits.Guilds, GatewayIntentBits.GuildMessages]);
    await logIn();
    const received = nextMessages(2);

    fake.messageCreate({ content: 'just chatting' });
    fake.messageCreate({ content: `<@${fake.bot.id}> hello` });

    const [plain, mention] = await received;
    expect(plain?.content).toBe('');
    expect(mention?.content).toBe(`<@${fake.bot.id}> hello`);
  });

  it('when the bot did not ask for GUILD_MESSAGES, then server messages are withheld and DMs still arrive', async () => {
    await start({}, [GatewayIntentBits.Guilds, GatewayIntentBits.DirectMessages]);
    await logIn();
    const received = nextEvent(Events.MessageCreate);

    fake.messageCreate({ content: 'in the server' });
    fake.directMessageCreate({ content: 'in private' });

    expect((await received)[0].content).toBe('in private');
    expect(fake.events).toContainEqual({
      type: 'withheld',
      t: 'MESSAGE_CREATE',
      reason: 'missing intent GuildMessages',
    });
  });

  it('when it is not enabled for the application, then IDENTIFY is closed with 4014 as Discord closes it', async () => {
    await start({ privilegedIntents: { messageContent: false } });
    const disconnected = nextEvent(Events.ShardDisconnect);

    await expect(client.login(fake.token)).rejects.toThrow('Used disallowed intents');
    expect((await disconnected)[0].code).toBe(4014);
    const closed = await fake.waitForEvent((event) => event.type === 'closed' && event.code === 4014);
    expect(closed).toMatchObject({
      by: 'fake',
      reason: expect.stringMatching(/^Disallowed intent\(s\)\. .*MessageContent/),
    });
    // Scripted by the test: not a protocol error of the bot's.
    fake.assertNothingUnexpected();
  });
});

describe('interactions', () => {
  beforeEach(async () => {
    await start();
    await logIn();
  });

  it('when commands are registered in a server, then the fake stores them and keeps ids on overwrite', async () => {
    const definitions = [
      {
        name: 'ask',
        description: 'Ask the bot',
        options: [{ type: 3, name: 'question', description: 'Your question', required: true }],
      },
    ];

    const first = await client.application!.commands.set(definitions, fake.guild.id);
    const second = await client.application!.commands.set(definitions, fake.guild.id);

    expect(fake.commands(fake.guild.id).map((command) => command.name)).toEqual(['ask']);
    expect(second.first()!.id).toBe(first.first()!.id);
    const put = await fake.waitForRequest('PUT /applications/:application_id/guilds/:guild_id/commands');
    expect(put.body).toMatchObject([{ name: 'ask', description: 'Ask the bot' }]);
  });

  it('when a command name is invalid, then registration fails with 50035', async () => {
    await expect(
      client.application!.commands.set([{ name: 'Ask Me', description: 'x' }]),
    ).rejects.toMatchObject({
      code: 50035,
    });
  });

  it('when a user runs a slash command, then deferReply and editReply reach the callback and webhook', async () => {
    await client.application!.commands.set(
      [
        {
          name: 'ask',
          description: 'Ask the bot',
          options: [{ type: 3, name: 'question', description: 'Your question', required: true }],
        },
      ],
      fake.guild.id,
    );
    const received = nextEvent(Events.InteractionCreate);

    const sent = fake.chatInputCommand({ commandName: 'ask', options: { question: 'Why is the sky blue?' } });

    const [interaction] = await received;
    if (!interaction.isChatInputCommand()) throw new Error('expected a ChatInputCommandInteraction');
    expect(interaction.commandName).toBe('ask');
    expect(interaction.commandId).toBe(fake.commands(fake.guild.id)[0]?.id);
    expect(interaction.options.getString('question')).toBe('Why is the sky blue?');
    expect(interaction.user.id).toBe(fake.user.id);
    expect(interaction.guildId).toBe(fake.guild.id);
    expect(interaction.channelId).toBe(fake.channel.id);
    expect(interaction.appPermissions.has(PermissionFlagsBits.SendMessages)).toBe(true);
    expect(interaction.memberPermissions?.has(PermissionFlagsBits.ManageGuild)).toBe(false);

    await interaction.deferReply();
    await interaction.editReply('Rayleigh scattering.');
    await interaction.followUp({ content: 'Only you can see this.', flags: MessageFlags.Ephemeral });

    const callback = await fake.waitForRequest(
      'POST /interactions/:interaction_id/:interaction_token/callback',
    );
    expect(callback.params).toMatchObject({ interaction_id: sent.id, interaction_token: sent.token });
    expect(callback.body).toMatchObject({ type: 5 });
    expect(callback.headers.authorization).toBeUndefined();
    const edit = await fake.waitForRequest(
      'PATCH /webhooks/:application_id/:interaction_token/messages/:message_id',
    );
    expect(edit.params).toMatchObject({ application_id: fake.applicationId, message_id: '@original' });
    expect(edit.body).toMatchObject({ content: 'Rayleigh scattering.' });
    const responses = fake.interactionResponses(sent.id);
    expect(responses.callbackType).toBe(5);
    expect(responses.original?.content).toBe('Rayleigh scattering.');
    expect(responses.original?.flags).toBe(0);
    expect(responses.followUps.map((message) => [message.content, message.flags])).toEqual([
      ['Only you can see this.', MessageFlags.Ephemeral],
    ]);
    fake.assertNothingUnexpected();
  });

  it('when a user clicks a button on a bot message, then a ButtonInteraction arrives and update edits the message', async () => {
    const sent = await general().send({
      content: 'Answered by GPT-4o Mini.',
      components: [
        new ActionRowBuilder<ButtonBuilder>().addComponents(
          new ButtonBuilder().setCustomId('escalate').setLabel('Ask Claude').setStyle(ButtonStyle.Primary),
        ),
      ],
    });
    const received = nextEvent(Events.InteractionCreate);

    fake.clickButton({ messageId: sent.id, customId: 'escalate' });

    const [interaction] = await received;
    if (!interaction.isButton()) throw new Error('expected a ButtonInteraction');
    expect(interaction.customId).toBe('escalate');
    expect(interaction.message.id).toBe(sent.id);
    await interaction.update({ content: 'Escalating to Claude Haiku…', components: [] });
    expect(fake.messagesIn(fake.channel.id).map((message) => [message.content, message.components])).toEqual([
      ['Escalating to Claude Haiku…', []],
    ]);
  });

  it('when a user picks from a select menu, then the values arrive and a second acknowledgement fails (40060)', async () => {
    const sent = await general().send({
      content: 'Which model?',
      components: [
        new ActionRowBuilder<StringSelectMenuBuilder>().addComponents(
          new StringSelectMenuBuilder()
            .setCustomId('model')
            .addOptions({ label: 'GPT-4o Mini', value: 'fast' }, { label: 'Claude Haiku', value: 'smart' }),
        ),
      ],
    });
    const received = nextEvent(Events.InteractionCreate);

    fake.chooseInSelectMenu({ messageId: sent.id, customId: 'model', values: ['smart'] });

    const [interaction] = await received;
    if (!interaction.isStringSelectMenu()) throw new Error('expected a StringSelectMenuInteraction');
    expect(interaction.values).toEqual(['smart']);
    await interaction.deferUpdate();
    await expect(interaction.reply('again')).rejects.toThrow(); // discord.js refuses locally
    await expect(
      client.rest.post(`/interactions/${interaction.id}/${interaction.token}/callback`, {
        body: { type: 4, data: { content: 'again' } },
        auth: false,
      }),
    ).rejects.toMatchObject({ code: 40060 });
  });

  it('when the bot acknowledges too late, then Discord has forgotten the interaction (10062)', async () => {
    await client.destroy();
    await fake.close();
    await start({ interactionDeadlineMs: 50 });
    await logIn();
    const received = nextEvent(Events.InteractionCreate);
    fake.chatInputCommand({ commandName: 'ask', options: { question: 'slow?' } });
    const [interaction] = await received;
    if (!interaction.isChatInputCommand()) throw new Error('expected a ChatInputCommandInteraction');

    await new Promise((resolve) => setTimeout(resolve, 100));

    await expect(interaction.deferReply()).rejects.toMatchObject({ code: 10062, status: 404 });
  });
});

describe('rate limits', () => {
  beforeEach(async () => {
    await start();
    await logIn();
  });

  it('when an edit gets a 429, then discord.js waits retry_after and the edit still lands', async () => {
    const sent = await general().send('draft');
    fake.rateLimits.reject('PATCH /channels/:channel_id/messages/:message_id', { retryAfterSeconds: 0.2 });

    await sent.edit('final');

    const edits = fake.requests.filter(
      (request) => request.route === 'PATCH /channels/:channel_id/messages/:message_id',
    );
    expect(edits.map((request) => request.status)).toEqual([429, 200]);
    expect(edits[0]?.responseBody).toEqual({
      message: 'You are being rate limited.',
      retry_after: 0.2,
      global: false,
      code: 0,
    });
    expect(edits[1]!.receivedAt - edits[0]!.receivedAt).toBeGreaterThanOrEqual(200);
    expect(fake.rateLimits.count).toBe(1);
    expect(fake.messagesIn(fake.channel.id)[0]?.content).toBe('final');
  });

  it('when a 429 is scripted for matching requests only, then the others on the route pass untouched', async () => {
    const first = await general().send('first');
    const second = await general().send('second');
    fake.rateLimits.reject('PATCH /channels/:channel_id/messages/:message_id', {
      retryAfterSeconds: 0.1,
      matching: (request) => request.params.message_id === second.id,
    });

    await first.edit('first, edited');
    await second.edit('second, edited');

    const edits = fake.requests.filter(
      (request) => request.route === 'PATCH /channels/:channel_id/messages/:message_id',
    );
    expect(edits.map((request) => [request.params.message_id, request.status])).toEqual([
      [first.id, 200],
      [second.id, 429],
      [second.id, 200],
    ]);
    expect(fake.messagesIn(fake.channel.id).map((message) => message.content)).toEqual([
      'first, edited',
      'second, edited',
    ]);
  });

  it('when Discord answers a global 429, then discord.js pauses every route for retry_after', async () => {
    fake.rateLimits.reject('POST /channels/:channel_id/typing', { retryAfterSeconds: 0.2, isGlobal: true });

    await general().sendTyping();

    const typing = fake.requests.filter((request) => request.route === 'POST /channels/:channel_id/typing');
    expect(typing.map((request) => request.status)).toEqual([429, 204]);
    expect(typing[0]?.responseBody).toMatchObject({ global: true, retry_after: 0.2 });
    expect(typing[1]!.receivedAt - typing[0]!.receivedAt).toBeGreaterThanOrEqual(200);
  });

  it('when a bucket says remaining 0, then discord.js holds the next request until reset-after', async () => {
    // discord.js files a route under its bucket hash only after the first response names it.
    await general().send('warm-up');
    fake.rateLimits.exhaust('POST /channels/:channel_id/messages', { resetAfterSeconds: 0.3 });
    const rateLimited = once(client.rest, 'rateLimited');

    await general().send('one');
    await general().send('two');

    const posts = fake.requests.filter((request) => request.route === 'POST /channels/:channel_id/messages');
    expect(posts.map((request) => request.status)).toEqual([200, 200, 200]);
    expect(posts[2]!.receivedAt - posts[1]!.receivedAt).toBeGreaterThanOrEqual(300);
    const [info] = await rateLimited;
    expect(info).toMatchObject({ global: false, limit: 5 });
    expect(fake.rateLimits.count).toBe(0);
  });
});

describe('repeated creates and lost responses', () => {
  const CREATE = 'POST /channels/:channel_id/messages';
  const creates = () => fake.requests.filter((request) => request.route === CREATE);
  const echoesOf = (messageId: string) =>
    fake.events.filter(
      (event) => event.type === 'sent' && event.t === 'MESSAGE_CREATE' && event.d.id === messageId,
    );

  it('when a create repeats a nonce with enforce_nonce, then Discord returns the first message and makes no new one', async () => {
    await start();
    await logIn();
    const path = `/channels/${fake.channel.id}/messages` as const;

    const first = (await client.rest.post(path, {
      body: { content: 'once', nonce: '1234567890', enforce_nonce: true },
    })) as { id: string };
    const again = (await client.rest.post(path, {
      body: { content: 'once, again', nonce: '1234567890', enforce_nonce: true },
    })) as { id: string; content: string };
    // Without enforce_nonce the nonce is only echoed back, never checked.
    const unchecked = (await client.rest.post(path, {
      body: { content: 'twice', nonce: '1234567890' },
    })) as { id: string };

    expect(again).toMatchObject({ id: first.id, content: 'once' });
    expect(unchecked.id).not.toBe(first.id);
    expect(fake.messagesIn(fake.channel.id).map((message) => message.content)).toEqual(['once', 'twice']);
    // Echoes go out in order: once the last create's is out, a repeat's would have been too.
    await fake.waitForEvent((event) => echoesOf(unchecked.id).includes(event));
    expect(echoesOf(first.id)).toHaveLength(1);
  });

  it('when a response comes after discord.js gave up waiting, then it retries with the same nonce and the message lands once', async () => {
    await start({}, BOT_INTENTS, { enforceNonce: true, rest: { timeout: 200 } });
    await logIn();
    fake.delayNext(CREATE, { delayMs: 1_000 });

    const sent = await general().send('hello');

    expect(creates()).toHaveLength(2);
    const [first, retry] = creates();
    expect(first?.body).toMatchObject({ content: 'hello', enforce_nonce: true });
    expect(retry?.body.nonce).toBe(first?.body.nonce);
    expect(retry?.responseBody.id).toBe(first?.responseBody.id);
    expect(sent.id).toBe(first?.responseBody.id);
    expect(fake.messagesIn(fake.channel.id).map((message) => message.content)).toEqual(['hello']);
    expect(echoesOf(sent.id)).toHaveLength(1);
  });

  it('when a response is held back for less than the timeout, then it arrives late and nothing is repeated', async () => {
    await start({}, BOT_INTENTS, { rest: { timeout: 2_000 } });
    await logIn();
    fake.delayNext(CREATE, { delayMs: 200 });

    const sent = await general().send('patience');

    expect(creates().map((request) => request.responseBody.id)).toEqual([sent.id]);
  });

  it('when an INTERACTION_CREATE is redelivered, then the client gets the same interaction twice under two sequence numbers', async () => {
    await start();
    await logIn();
    const received: string[] = [];
    client.on(Events.InteractionCreate, (interaction) => received.push(interaction.id));

    const sent = fake.chatInputCommand({ commandName: 'ask', options: { question: 'twice?' } });
    const payload = fake.redeliver('INTERACTION_CREATE', sent.id);

    await expect.poll(() => received).toEqual([sent.id, sent.id]);
    expect(payload).toMatchObject({ id: sent.id, token: sent.token });
    const sequences = fake.events.flatMap((event) =>
      event.type === 'sent' && event.t === 'INTERACTION_CREATE' ? [event.s] : [],
    );
    expect(sequences).toHaveLength(2);
    expect(sequences[1]).toBeGreaterThan(sequences[0]!);
  });

  it('when a MESSAGE_CREATE is redelivered, then the fake sends it again and discord.js, which has it cached, emits it once', async () => {
    await start();
    await logIn();
    const received: string[] = [];
    client.on(Events.MessageCreate, (message) => received.push(message.id));

    const question = fake.messageCreate({ content: 'did you get this?' });
    fake.redeliver('MESSAGE_CREATE', question.id);
    // Dispatches arrive in order: once this one is in, the redelivery has been handled.
    const later = fake.messageCreate({ content: 'and this?' });

    await expect.poll(() => received).toEqual([question.id, later.id]);
    const sent = fake.events.filter(
      (event) => event.type === 'sent' && event.t === 'MESSAGE_CREATE' && event.d.id === question.id,
    );
    expect(sent).toHaveLength(2);
    expect(() => fake.redeliver('INTERACTION_CREATE', question.id)).toThrow(/no INTERACTION_CREATE/);
  });
});

describe('reconnecting', () => {
  beforeEach(async () => {
    await start();
    await logIn();
  });

  it('when Discord drops the connection, then the bot RESUMEs, gets what it missed and later dispatches', async () => {
    const received = nextMessages(2);
    const resumed = nextEvent(Events.ShardResume);

    await fake.disconnect();
    fake.messageCreate({ content: 'sent while you were away' });
    await resumed;
    fake.messageCreate({ content: 'sent after the resume' });

    expect((await received).map((message) => message.content)).toEqual([
      'sent while you were away',
      'sent after the resume',
    ]);
    expect(fake.identifies).toHaveLength(1);
    const sessionId = fake.events.find((event) => event.type === 'identified')!;
    expect(fake.events).toContainEqual(
      expect.objectContaining({
        type: 'received',
        op: 6,
        d: expect.objectContaining({ session_id: (sessionId as { sessionId: string }).sessionId }),
      }),
    );
    expect(fake.events).toContainEqual(expect.objectContaining({ type: 'connect', path: '/resume' }));
    expect(fake.events).toContainEqual(expect.objectContaining({ type: 'resumed', replayed: 1 }));
  });

  it('when Discord sends op 7 Reconnect, then the bot closes with 4200 and resumes', async () => {
    const resumed = nextEvent(Events.ShardResume);

    fake.requestReconnect();

    await resumed;
    expect(fake.events).toContainEqual(expect.objectContaining({ type: 'closed', code: 4200, by: 'bot' }));
    expect(fake.identifies).toHaveLength(1);
  });

  it('when the TCP connection dies abruptly, then the bot resumes too', async () => {
    const resumed = nextEvent(Events.ShardResume);

    await fake.disconnect({ abrupt: true });

    await resumed;
    const received = nextEvent(Events.MessageCreate);
    fake.messageCreate({ content: 'still here?' });
    expect((await received)[0].content).toBe('still here?');
  });
});

describe('invalid sessions', () => {
  it('when Discord invalidates the session, then the bot identifies afresh and keeps receiving', async () => {
    // discord.js spaces IDENTIFYs five seconds apart (max_concurrency 1); the test lifts that.
    await start({}, BOT_INTENTS, {
      ws: { buildIdentifyThrottler: () => ({ waitForIdentify: () => Promise.resolve() }) },
    });
    await logIn();
    const reidentified = fake.waitForEvent((event) => event.type === 'identified', {
      from: fake.events.length,
    });

    fake.invalidateSession(false);

    await reidentified;
    expect(fake.identifies).toHaveLength(2);
    const received = nextEvent(Events.MessageCreate);
    fake.messageCreate({ content: 'new session' });
    expect((await received)[0].content).toBe('new session');
  });
});

describe('the CDN', () => {
  beforeEach(async () => {
    await start();
    await logIn();
  });

  it('when an attachment is scripted to stall, then its headers arrive with its length and its body never does', async () => {
    const received = nextEvent(Events.MessageCreate);
    fake.messageCreate({
      content: 'see attached',
      attachments: [{ filename: 'notes.txt', content: 'twelve bytes', serving: { stalls: true } }],
    });
    const attachment = (await received)[0].attachments.first()!;

    const response = await fetch(attachment.url, { signal: AbortSignal.timeout(300) });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-length')).toBe('12');
    const error = await response.text().catch((caught: unknown) => caught);
    expect((error as Error).name).toBe('TimeoutError');
    expect(fake.cdnDownloads(attachment.id)).toEqual([{ bytesSent: 0, isComplete: false }]);
  });

  it('when an attachment is scripted larger than its message says, then it streams without a length and the CDN counts what it wrote until the reader left', async () => {
    const chunk = Buffer.alloc(64 * 1024, 'a');
    const repeat = 1_000; // 64 MB in all
    const received = nextEvent(Events.MessageCreate);
    fake.messageCreate({
      content: 'see attached',
      attachments: [{ filename: 'notes.txt', content: chunk, size: 1_024, serving: { repeat } }],
    });
    const attachment = (await received)[0].attachments.first()!;
    expect(attachment.size).toBe(1_024);

    const response = await fetch(attachment.url);
    expect(response.headers.get('content-length')).toBeNull();
    const reader = response.body!.getReader();
    let read = 0;
    while (read <= 1024 * 1024) read += (await reader.read()).value?.byteLength ?? 0;
    await reader.cancel();

    const [download] = fake.cdnDownloads(attachment.id);
    expect(download?.isComplete).toBe(false);
    expect(download?.bytesSent).toBeGreaterThanOrEqual(read);
    expect(download?.bytesSent).toBeLessThan(chunk.length * repeat);
  });

  it('when an attachment is served plainly, then the whole of it is recorded as sent', async () => {
    const received = nextEvent(Events.MessageCreate);
    fake.messageCreate({ content: 'see attached', attachments: [{ filename: 'a.txt', content: 'hello' }] });
    const attachment = (await received)[0].attachments.first()!;

    expect(await (await fetch(attachment.url)).text()).toBe('hello');
    expect(fake.cdnDownloads(attachment.id)).toEqual([{ bytesSent: 5, isComplete: true }]);
  });
});
