// The startup benchmark's baseline: the smallest bot that does what tierbot does for a mention — stream
// a chat completion from OpenAI into a reply, edited as the text grows — with discord.js's defaults and
// nothing else (no budgets, ledger, database, second provider or commands). Started the way tierbot is,
// `npm start` with the same node flags, configured by the same environment variables.
import process from 'node:process';
import { Client, Events, GatewayIntentBits, Partials } from 'discord.js';
import OpenAI from 'openai';

/** tierbot's pace of edits: at most one every 1.2 s. */
const EDIT_INTERVAL_MS = 1_200;

const client = new Client({
  intents: [
    GatewayIntentBits.Guilds,
    GatewayIntentBits.GuildMessages,
    GatewayIntentBits.MessageContent,
    GatewayIntentBits.DirectMessages,
  ],
  partials: [Partials.Channel],
  allowedMentions: { parse: [] },
  rest: process.env.DISCORD_API_URL ? { api: process.env.DISCORD_API_URL } : {},
});
// Reads OPENAI_API_KEY and OPENAI_BASE_URL.
const openai = new OpenAI();

client.on(Events.MessageCreate, async (message) => {
  if (message.author.bot || !message.mentions.users.has(client.user.id)) return;
  try {
    const stream = await openai.chat.completions.create({
      model: 'gpt-4o-mini',
      messages: [{ role: 'user', content: message.content }],
      stream: true,
    });
    let text = '';
    let reply;
    let editedAt = 0;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta?.content ?? '';
      if (text === '' || Date.now() - editedAt < EDIT_INTERVAL_MS) continue;
      reply = reply ? await reply.edit(text) : await message.reply(text);
      editedAt = Date.now();
    }
    if (!reply) await message.reply(text || '(no answer)');
    else await reply.edit(text);
  } catch (error) {
    process.stderr.write(`could not answer: ${error}\n`);
  }
});

client.once(Events.ClientReady, (ready) => process.stdout.write(`bare bot ready as ${ready.user.tag}\n`));
process.once('SIGTERM', () => void client.destroy().then(() => process.exit(0)));
await client.login(process.env.DISCORD_TOKEN);
