// Links to the rule pages. A finding reaches people who have no checkout of this repository (someone
// reading a kubectl denial, a CI log), so it points at its rule's page with an https URL:
// <baseUrl>/<rule id>.md, the base being the config's `docs.baseUrl` or, by default, the rule pages of
// the project's repository (package.json `homepage`).

import { packageInfo } from '../core/package-info.ts';

/** Longest `docs.baseUrl`: a link must fit on one kubectl warning line (120 characters) with the rule id. */
export const MAX_DOCS_BASE_URL_CHARS = 80;

/** `<homepage>/blob/main/docs/rules`, or undefined when package.json names no https homepage. */
export function defaultDocsBaseUrl(): string | undefined {
  const home = packageInfo().homepage;
  return home ? `${home}/blob/main/docs/rules` : undefined;
}

/** The page of `rule`: under `baseUrl`, or (without one) its path in this repository. */
export function ruleDocsUrl(rule: string, baseUrl: string | undefined): string {
  const page = `${encodeURIComponent(rule)}.md`;
  return baseUrl ? `${baseUrl}/${page}` : `docs/rules/${page}`;
}

/** Rule id -> link to its page. */
export type DocsLinks = (rule: string) => string;

export function docsLinks(baseUrl: string | undefined): DocsLinks {
  return (rule) => ruleDocsUrl(rule, baseUrl);
}
