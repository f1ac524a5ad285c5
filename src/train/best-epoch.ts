/**
 * Which of a phase's epochs is its best: the one whose weights the phase keeps, and the one
 * patience counts from. Pure.
 */

/** What an epoch is judged by; `val_char_acc` is absent in state written by older versions. */
export interface EpochScore {
  val_seq_acc: number;
  val_char_acc?: number;
  val_loss: number;
}

/**
 * True when `epoch` beats `best` (any epoch beats none): higher validation sequence accuracy;
 * on a tie, higher character accuracy (sequence accuracy ties at 0 early in training, while
 * characters are already being learned); then lower loss. A full tie is no improvement.
 */
export function betterEpoch(epoch: EpochScore, best: EpochScore | undefined): boolean {
  if (!best) return true;
  if (epoch.val_seq_acc !== best.val_seq_acc) return epoch.val_seq_acc > best.val_seq_acc;
  if (epoch.val_char_acc !== undefined && best.val_char_acc !== undefined && epoch.val_char_acc !== best.val_char_acc) {
    return epoch.val_char_acc > best.val_char_acc;
  }
  return epoch.val_loss < best.val_loss;
}
