import type { AuditEntry, Budget, BudgetChange, BudgetScope, LimitStanding } from '../core/budget.js';
import type { Budgets, Member } from '../core/ports.js';
import type { Ledger } from './ledger.js';
import type { LedgerStore } from './store.js';

/** How many audit entries /budget show lists unless asked for another number. */
const AUDIT_ENTRIES = 10;

/** Budgets as admins set them (audited) and people see them (with what waits to be written counted). */
export class BudgetBook implements Budgets {
  constructor(
    private readonly ledger: Ledger,
    private readonly store: LedgerStore,
    private readonly now: () => number = Date.now,
  ) {}

  standings(member: Member): Promise<LimitStanding[]> {
    return this.ledger.standings(member);
  }

  standingsOfMembers(members: readonly Member[]): Promise<LimitStanding[][]> {
    return this.ledger.standingsOfMembers(members);
  }

  setBudget(change: BudgetChange, budget: Budget): Promise<Budget | undefined> {
    return this.store.writeBudget(change, budget, this.now());
  }

  clearBudget(change: BudgetChange): Promise<Budget | undefined> {
    return this.store.writeBudget(change, null, this.now());
  }

  budgetOf(guildId: string, scope: BudgetScope, subjectId = ''): Promise<Budget | undefined> {
    return this.store.budgetOf(guildId, scope, subjectId);
  }

  auditLog(guildId: string, limit = AUDIT_ENTRIES): Promise<AuditEntry[]> {
    return this.store.auditLog(guildId, limit);
  }

  roleBudgets(guildId: string): Promise<{ roleId: string; budget: Budget }[]> {
    return this.store.roleBudgets(guildId);
  }
}
