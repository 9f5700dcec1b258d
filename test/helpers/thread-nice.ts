// Each thread's name and nice value, read from /proc (Linux): for tests of src/server/worker-priority.ts.

import { readdirSync, readFileSync } from 'node:fs';

export interface ThreadNice {
  readonly tid: number;
  readonly name: string;
  readonly nice: number;
}

/** The threads of `pid` (or of this process) with their nice values (field 19 of /proc/<pid>/task/<tid>/stat). */
export function threadNice(pid: number | 'self' = 'self'): ThreadNice[] {
  const dir = `/proc/${pid}/task`;
  const out: ThreadNice[] = [];
  for (const tid of readdirSync(dir)) {
    let stat: string;
    let name: string;
    try {
      stat = readFileSync(`${dir}/${tid}/stat`, 'utf8');
      name = readFileSync(`${dir}/${tid}/comm`, 'utf8').trim();
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT' || (e as NodeJS.ErrnoException).code === 'ESRCH') continue; // ended since the listing
      throw e;
    }
    // The name (field 2) may hold spaces and parentheses: the fields after it start at the last ')',
    // with the state, field 3.
    const nice = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19 - 3]);
    out.push({ tid: Number(tid), name, nice });
  }
  return out;
}
