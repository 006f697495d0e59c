/**
 * CODEOWNERS with GitHub's semantics. (Types first; the parser and matcher follow.)
 */

/** Where GitHub looks for the file, in order; the first that exists is used. */
export const CODEOWNERS_PATHS = [".github/CODEOWNERS", "CODEOWNERS", "docs/CODEOWNERS"] as const;

/** GitHub does not load a CODEOWNERS file of this size or more. */
export const CODEOWNERS_MAX_BYTES = 3 * 1024 * 1024;

/** An owner as written (`text`), with the normalised identity used to compare. */
export type Owner =
  | { readonly kind: "user"; readonly text: string; readonly login: string }
  | { readonly kind: "team"; readonly text: string; readonly org: string; readonly slug: string }
  | { readonly kind: "email"; readonly text: string; readonly email: string };

/** What CODEOWNERS says about one path. */
export type Ownership =
  /** The last matching rule names these owners (at `line`). */
  | { readonly status: "owned"; readonly owners: readonly Owner[]; readonly line: number }
  /** No rule matches, or the last matching rule names no owners. */
  | { readonly status: "unowned"; readonly line: number | null }
  /** Nothing may be approved: the file is too large, or a skipped line would have matched. */
  | { readonly status: "blocked"; readonly reason: string; readonly lines: readonly number[] };
