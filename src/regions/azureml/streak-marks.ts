import type { WorkerExit } from "../types.js";
import { exitTagKey, exitTagValue, type EndedJob } from "./exits.js";
import type { JobSummary } from "./listing.js";
import type { Retirer } from "./retire.js";

/**
 * The marks of the failed-start streak where finished jobs are not retired: `retireFinished: keep` (they
 * stay listed, as they are) and `listing: index` (finished jobs are never listed). As in the default mode,
 * each failed start of the current streak is marked on its job (`{tagKey}.exit`, exits.ts), so that a
 * restarted daemon or `workforce status` finds the streak. Nothing retires these jobs when the streak
 * ends, so the marks are taken off instead (a GET and a PUT each): else the next restart would take the
 * failed starts of every streak ever for one streak. The job is otherwise left as it was.
 */
export class StreakMarks {
  /** Jobs that carry the mark now, by name (marked by us, or found marked by a first listing). */
  private readonly marked = new Set<string>();
  /** Resources of failed jobs that finished while this process watched, until marked or not held. */
  private readonly candidates = new Map<string, Record<string, unknown>>();

  constructor(private readonly options: { tagKey: string; retirer: Retirer }) {}

  /**
   * Told of each finished job a listing shows (or the index listing lost and ARM read): `ended` is what
   * the exit history read of it when new to it, `listed` whether a whole listing came before this one.
   */
  see(
    job: JobSummary,
    ended: EndedJob | undefined,
    listed: boolean,
    resource: () => Record<string, unknown>,
  ): void {
    if (!ended) return;
    if (ended.marked) this.marked.add(job.name);
    // A first listing's unmarked finished jobs are no exits (exits.ts): only those that ended since count.
    else if (listed && job.status === "Failed") this.candidates.set(job.name, resource());
  }

  /**
   * After the exits are committed: mark the held failed starts (the current streak's) not marked yet, take
   * the mark off those no longer held (the streak ended), forget the rest.
   */
  settle(held: ReadonlySet<string>, exitOf: (name: string) => WorkerExit | undefined): void {
    const { retirer, tagKey } = this.options;
    const key = exitTagKey(tagKey);
    for (const name of held) {
      const resource = this.candidates.get(name);
      const exit = exitOf(name);
      if (this.marked.has(name) || !resource || !exit) continue;
      retirer.mark(
        [
          {
            job: { name, status: "Failed", createdAt: 0, nodes: 1, class: "finished", resource },
            key,
            value: exitTagValue(exit),
          },
        ],
        (done) => {
          this.marked.add(done);
          this.candidates.delete(done);
        },
      );
    }
    for (const name of this.marked)
      if (!held.has(name)) retirer.unmark(name, key, (gone) => this.marked.delete(gone));
    for (const name of this.candidates.keys()) if (!held.has(name)) this.candidates.delete(name);
  }
}
