import { formatPercent } from '../lib/format';

interface Props {
  percent: number;
  /** What the bar measures, for assistive technology. */
  label: string;
  /** Extra words read after the percent, such as the status. */
  detail?: string;
  tone?: 'active' | 'ok' | 'warn' | 'bad' | 'muted';
  size?: 'large' | 'small';
}

/**
 * ProgressBar draws a percent, as a progressbar to assistive technology. The large bar moves
 * its fill by transform, smoothly, on a layer of its own; small bars (one per file, maybe a
 * thousand) set a width inside their row, which stays cheaper than a thousand layers.
 */
export function ProgressBar({ percent, label, detail, tone = 'active', size = 'small' }: Props) {
  const p = Math.min(100, Math.max(0, percent));
  const text = detail ? `${formatPercent(p)}, ${detail}` : formatPercent(p);
  return (
    <div
      className={`bar bar-${size} tone-${tone}`}
      role="progressbar"
      aria-label={label}
      aria-valuemin={0}
      aria-valuemax={100}
      aria-valuenow={p}
      aria-valuetext={text}
    >
      <div
        className="bar-fill"
        style={size === 'large' ? { transform: `scaleX(${p / 100})` } : { width: `${p}%` }}
      />
    </div>
  );
}
