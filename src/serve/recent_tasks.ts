/**
 * Task type of recent requests by id, so that feedback can be counted under
 * the task of the request it is about (the ledger keeps its own copy for the
 * cost report). Bounded: the oldest ids are forgotten first.
 */
export class RecentTasks {
  private readonly tasks = new Map<string, string>();

  constructor(private readonly max = 100_000) {}

  set(id: string, task: string): void {
    this.tasks.set(id, task);
    if (this.tasks.size > this.max) this.tasks.delete(this.tasks.keys().next().value!);
  }

  get(id: string): string | undefined {
    return this.tasks.get(id);
  }
}
