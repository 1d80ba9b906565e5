import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import pino from 'pino';
import type { App } from './app.js';
import { loadModelConfig, loadOrExit, type ModelConfig } from './config.js';
import { describePeriod, formatResetTime } from './core/budget.js';
import { ProvidersUnavailableError } from './core/calls.js';
import { type ChatMessage, ProviderError } from './core/chat.js';
import { footerLines } from './core/footer.js';
import { newId } from './core/ids.js';
import { formatUsd, parseUsdAmount } from './core/money.js';
import { modelLabel } from './core/models.js';
import { describeProvidersDown } from './core/outage.js';
import { answerTurn, type ModelChoice, type TurnRequest } from './core/turn.js';
import { EXIT_CODES } from './exit-codes.js';
import { createLogger } from './log.js';

/**
 * The terminal chat: the same engine, ledger and budgets as the bot, with Discord replaced by stdin and
 * stdout. Each line is a message; the answer streams out, then one footer line starting with `-- `.
 * `/escalate [prompt]`, `/usage` and `/budget <usd>` work as lines. With stdin piped, it answers each
 * line in turn and exits at the end of input. It reads the models' configuration only: Discord's
 * variables, set or not, valid or not, play no part.
 */

/** The terminal is one "server" with one channel, so /budget can set a budget there. */
const TERMINAL = 'terminal';
/** How much of the conversation is sent with each message. */
const HISTORY_MESSAGES = 20;
const DEFAULT_USER = 'console';

const USAGE = 'usage: npm run chat -- [--user NAME] [--help]';
const HELP = `${USAGE}

Chat with tierbot's engine in the terminal: GPT-4o Mini first, Claude Haiku when a question needs it,
charged to your budget in the same ledger as the bot. Each line is a message; /escalate [prompt],
/usage and /budget <usd> work as lines; Ctrl-C cancels an answer, Ctrl-D quits. With input piped in,
it answers each line and exits. Needs OPENAI_API_KEY and ANTHROPIC_API_KEY (environment or .env);
no Discord settings.

  --user NAME   whose budget, usage and latest answer to use (default: ${DEFAULT_USER})
  -h, --help    show this help
`;

type Arguments = { help: true } | { help: false; userId: string } | { problem: string };

/** The command line, strictly: anything unknown is a usage error, told in one line. */
function parseChatArguments(args: readonly string[]): Arguments {
  const { values, tokens } = parseArgs({
    args: [...args],
    options: { user: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
    strict: false,
    allowPositionals: true,
    tokens: true,
  });
  for (const token of tokens) {
    if (token.kind === 'positional') return { problem: `unexpected argument "${token.value}"` };
    if (token.kind !== 'option') continue;
    if (token.name !== 'user' && token.name !== 'help') return { problem: `unknown option ${token.rawName}` };
    if (token.name === 'user' && (token.value === undefined || token.value.startsWith('-'))) {
      return { problem: '--user needs a name' };
    }
  }
  if (values.help === true) return { help: true };
  return { help: false, userId: (typeof values.user === 'string' && values.user.trim()) || DEFAULT_USER };
}

async function main(): Promise<void> {
  const parsed = parseChatArguments(process.argv.slice(2));
  if ('problem' in parsed) {
    process.stderr.write(`npm run chat: ${parsed.problem}\n${USAGE}\n`);
    process.exit(EXIT_CODES.usage);
  }
  if (parsed.help) {
    process.stdout.write(HELP);
    return;
  }

  const config = loadOrExit(() => loadModelConfig());
  // Loaded once the configuration is known good: the SDKs and the tokenizer take a second to load.
  const { createApp } = await import('./app.js');
  // Logs go to stderr, and only warnings by default: stdout is the conversation.
  const log = createLogger(config.logLevel === 'info' ? 'warn' : config.logLevel, pino.destination(2));
  const app = await createApp(config, log);
  const chat = new TerminalChat(app, config, parsed.userId);

  // In a terminal, readline draws the prompt and echoes what is typed (it puts the terminal in raw mode,
  // so nothing else does); with stdin or stdout piped, lines are read plainly and nothing is drawn.
  const isInteractive = process.stdin.isTTY === true;
  const lines = createInterface({
    input: process.stdin,
    output: isInteractive ? process.stdout : undefined,
    terminal: isInteractive && process.stdout.isTTY === true,
    prompt: '> ',
  });
  if (isInteractive) {
    say(
      `tierbot in your terminal, as ${parsed.userId}. Ask anything; /escalate [prompt], /usage, /budget <usd>; Ctrl-D to quit.`,
    );
    lines.prompt();
  }
  lines.on('SIGINT', () => chat.cancel() || lines.close());
  for await (const line of lines) {
    await chat.handle(line);
    if (isInteractive) lines.prompt();
  }
  await app.close();
}

class TerminalChat {
  private history: ChatMessage[] = [];
  private controller: AbortController | undefined;

  constructor(
    private readonly app: App,
    private readonly config: ModelConfig,
    private readonly userId: string,
  ) {}

  /** Cancels the answer in progress; false when there is none. */
  cancel(): boolean {
    if (!this.controller) return false;
    this.controller.abort();
    return true;
  }

  async handle(line: string): Promise<void> {
    const text = line.trim();
    if (text === '') return;
    const [command, ...rest] = text.split(/\s+/);
    const argument = rest.join(' ');
    switch (command) {
      case '/usage':
        return this.showUsage();
      case '/budget':
        return this.setBudget(argument);
      case '/escalate':
        return argument ? this.ask(argument, 'smart') : this.escalateLatest();
      default:
        if (text.startsWith('/'))
          return say(`unknown command ${command}; try /escalate, /usage or /budget <usd>`);
        return this.ask(text, 'auto');
    }
  }

  private ask(question: string, choice: ModelChoice): Promise<void> {
    return this.run(
      { conversation: [...this.history, { role: 'user', content: question }], choice },
      { role: 'user', content: question },
    );
  }

  /** /escalate alone: Claude Haiku answers the latest question again, improving on the earlier answer. */
  private async escalateLatest(): Promise<void> {
    const latest = await this.app.storage.turns.latest(this.userId, TERMINAL);
    if (!latest) return say('nothing to escalate yet: ask a question first');
    const question: ChatMessage = { role: 'user', content: latest.question };
    const before = this.history.at(-1)?.role === 'assistant' ? this.history.slice(0, -2) : this.history;
    return this.run({ conversation: [...before, question], choice: 'smart', earlierAnswer: latest.answer });
  }

  private async run(
    turn: Pick<TurnRequest, 'conversation' | 'choice' | 'earlierAnswer'>,
    asked?: ChatMessage,
  ): Promise<void> {
    this.controller = new AbortController();
    let wroteText = false;
    try {
      const result = await answerTurn(
        {
          ...turn,
          turnId: newId(),
          owner: { userId: this.userId, guildId: TERMINAL, channelId: TERMINAL },
          mode: 'auto',
          signal: this.controller.signal,
        },
        this.app.engine,
        (event) => {
          if (event.type === 'refining') {
            process.stdout.write(`\n[refining with ${modelLabel(event.model)}: ${event.reason}]\n`);
          } else {
            process.stdout.write(event.text);
            wroteText = true;
          }
        },
      );
      if (result.status === 'denied') {
        say(`-- no model called · ${footerLines(result).join(' · ')}`);
        return;
      }
      say(`${wroteText ? '\n' : `${result.text}\n`}-- ${footerLines(result).join(' · ')}`);
      if (asked) this.remember(asked, result.text);
      else this.replaceLastAnswer(result.text);
    } catch (error) {
      if (wroteText) process.stdout.write('\n');
      say(`-- ${describeFailure(error)}`);
    } finally {
      this.controller = undefined;
    }
  }

  private remember(question: ChatMessage, answer: string): void {
    this.history = [...this.history, question, { role: 'assistant' as const, content: answer }].slice(
      -HISTORY_MESSAGES,
    );
  }

  private replaceLastAnswer(answer: string): void {
    if (this.history.at(-1)?.role === 'assistant') {
      this.history = [...this.history.slice(0, -1), { role: 'assistant', content: answer }];
    }
  }

  private async showUsage(): Promise<void> {
    const member = { userId: this.userId, guildId: TERMINAL };
    const [user] = await this.app.storage.budgets.standings(member);
    if (!user) return;
    const period = describePeriod(user.budget.period);
    say(`Spent ${formatUsd(user.spentMicros)} of ${formatUsd(user.budget.amountMicros)} ${period}`);
    const remaining = Math.max(0, user.budget.amountMicros - user.spentMicros - user.reservedMicros);
    say(`${formatUsd(remaining)} left; resets ${formatResetTime(user.window.endMs)}`);
    for (const row of await this.app.storage.usage.byModel(this.userId, TERMINAL, user.window)) {
      const tokens = row.inputTokens + row.cachedInputTokens + row.cacheWriteTokens + row.outputTokens;
      say(
        `  ${row.model}: ${row.calls} call${row.calls === 1 ? '' : 's'} · ${tokens.toLocaleString('en-US')} tokens · ${formatUsd(row.costMicros)}`,
      );
    }
  }

  private async setBudget(argument: string): Promise<void> {
    const amount = parseUsdAmount(argument);
    if (!amount.ok) return say(`usage: /budget <usd> — ${amount.reason}`);
    const period = this.config.defaultUserBudget.period;
    await this.app.storage.budgets.setBudget(
      { guildId: TERMINAL, scope: 'user', userId: this.userId, changedBy: this.userId },
      { amountMicros: amount.micros, period },
    );
    say(`your budget is now ${formatUsd(amount.micros)} per ${period}`);
  }
}

function describeFailure(error: unknown): string {
  if (error instanceof ProvidersUnavailableError) return describeProvidersDown(error.costMicros);
  if (error instanceof ProviderError) {
    if (error.kind === 'aborted') return 'cancelled';
    if (error.details.partialText) return `the answer was cut off (${error.message})`;
    return `no answer: ${error.message}`;
  }
  throw error;
}

function say(text: string): void {
  process.stdout.write(`${text}\n`);
}

await main();
