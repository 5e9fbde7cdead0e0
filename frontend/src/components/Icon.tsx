// Inline SVG icons (no icon font, no extra dependency). Decorative unless given a title.

export type IconName =
  | "circle"
  | "clock"
  | "spinner"
  | "check"
  | "x"
  | "ban"
  | "shield"
  | "play"
  | "pause"
  | "rewind"
  | "stop"
  | "plus"
  | "refresh"
  | "download"
  | "arrow-down"
  | "wifi-off"
  | "list"
  | "activity"
  | "chart"
  | "logout"
  | "message"
  | "alert";

const paths: Record<IconName, string> = {
  circle: "M12 3a9 9 0 1 0 0 18a9 9 0 1 0 0-18z",
  clock: "M12 3a9 9 0 1 0 0 18a9 9 0 1 0 0-18zM12 7v5l3 2",
  spinner: "M12 3a9 9 0 1 0 9 9",
  check: "M5 12.5l4.5 4.5L19 7.5",
  x: "M6 6l12 12M18 6L6 18",
  ban: "M12 3a9 9 0 1 0 0 18a9 9 0 1 0 0-18zM5.6 5.6l12.8 12.8",
  shield: "M12 3l7 3v6c0 4.5-3 7.5-7 9c-4-1.5-7-4.5-7-9V6zM8.5 12l2.5 2.5l4.5-5",
  play: "M7 5v14l12-7z",
  pause: "M9 5v14M15 5v14",
  rewind: "M11 6l-7 6l7 6zM20 6l-7 6l7 6z",
  stop: "M6 6h12v12H6z",
  plus: "M12 5v14M5 12h14",
  refresh: "M20 11a8 8 0 1 0-2.3 5.7M20 4v7h-7",
  download: "M12 4v11M7 10l5 5l5-5M5 20h14",
  "arrow-down": "M12 5v14M6 13l6 6l6-6",
  "wifi-off": "M3 3l18 18M8.5 16.5a5 5 0 0 1 7 0M5 12.5a10 10 0 0 1 4-2.3M12 20h.01M19 12.5a10 10 0 0 0-3.5-2.2M2 8.8a15 15 0 0 1 5-2.6M22 8.8A15 15 0 0 0 11 5",
  list: "M8 6h13M8 12h13M8 18h13M3.5 6h.01M3.5 12h.01M3.5 18h.01",
  activity: "M3 12h4l3-8l4 16l3-8h4",
  chart: "M4 20V10M10 20V4M16 20v-7M22 20H2",
  logout: "M15 4h4v16h-4M10 8l-4 4l4 4M6 12h10",
  message: "M4 5h16v11H9l-5 4z",
  alert: "M12 3L2 20h20zM12 10v4M12 17h.01",
};

export function Icon({ name, size = 16, title, className }: { name: IconName; size?: number; title?: string; className?: string }) {
  return (
    <svg
      className={`icon ${name === "spinner" ? "icon-spin" : ""} ${className ?? ""}`}
      width={size}
      height={size}
      viewBox="0 0 24 24"
      fill="none"
      stroke="currentColor"
      strokeWidth={2.2}
      strokeLinecap="round"
      strokeLinejoin="round"
      role={title ? "img" : undefined}
      aria-hidden={title ? undefined : true}
      aria-label={title}
    >
      <path d={paths[name]} />
    </svg>
  );
}
