/** How models are named to people: "refining with Claude Haiku…", "kept the GPT-4o Mini answer". */
const LABELS: ReadonlyArray<readonly [prefix: string, label: string]> = [
  ['gpt-4o-mini', 'GPT-4o Mini'],
  ['gpt-4o', 'GPT-4o'],
  ['gpt-4.1-mini', 'GPT-4.1 Mini'],
  ['gpt-4.1-nano', 'GPT-4.1 Nano'],
  ['claude-haiku-4-5', 'Claude Haiku'],
  ['claude-3-5-haiku', 'Claude Haiku 3.5'],
  ['claude-sonnet-4-5', 'Claude Sonnet'],
];

export function modelLabel(model: string): string {
  return LABELS.find(([prefix]) => model === prefix || model.startsWith(`${prefix}-`))?.[1] ?? model;
}
