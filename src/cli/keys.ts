import { parseArgs } from "node:util";
import type { Output } from "#src/cli/audit.js";
import type { Db } from "#src/store/db.js";
import { JWKS_MAX_AGE_S, ROTATION_DELAY_S, rotateKeys } from "#src/tokens/keys.js";
import type { MasterKey } from "#src/tokens/master-key.js";

export const KEYS_USAGE = `usage: hallpass keys rotate [--now [--revoke-old]]

  rotate               publish a new signing key; it starts signing ${ROTATION_DELAY_S / 60} minutes later
                       (twice the JWKS max-age of ${JWKS_MAX_AGE_S} s), and the old key stays
                       published until the last token it signed has expired
  rotate --now         emergency: the new key signs at once. Verifiers holding a cached
                       JWKS reject its tokens until they refetch (on an unknown kid, or
                       after at most ${JWKS_MAX_AGE_S} s)
  --revoke-old         with --now: also drop the old key from the JWKS at once; every
                       token it signed stops verifying (for a leaked key)
`;

/** `hallpass keys rotate [--now [--revoke-old]]`. */
export async function keysRotate(
  db: Db,
  masterKey: MasterKey,
  args: readonly string[],
  out: Output,
): Promise<number> {
  const { values } = parseArgs({
    args: [...args],
    options: { now: { type: "boolean" }, "revoke-old": { type: "boolean" } },
    strict: true,
  });
  const rotation = await rotateKeys(db, masterKey, {
    immediate: values.now === true,
    revokeOld: values["revoke-old"] === true,
    actor: "operator",
  });
  if (rotation.state === "published") {
    out.stdout.write(
      `published key ${rotation.kid}; it starts signing at ${rotation.activeFrom.toISOString()}\n`,
    );
  } else {
    out.stdout.write(`key ${rotation.kid} is active and signs from now\n`);
  }
  for (const old of rotation.retired) {
    out.stdout.write(`retired key ${old.kid}; published until ${old.verifyUntil.toISOString()}\n`);
  }
  return 0;
}
