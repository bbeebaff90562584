// Who is signed in, and what their role lets the console offer. The server enforces every
// right again (node/officer_auth.py); hiding a control here is for clarity, not security.

export const session = { username: null, role: null, nodeId: null };

const OFFICER = new Set(['officer', 'supervisor']);

export const can = {
  send: () => OFFICER.has(session.role),
  ack: () => OFFICER.has(session.role),
  readInbox: () => OFFICER.has(session.role),
  readAudit: () => session.role === 'supervisor' || session.role === 'auditor',
  /** Update or cancel a sent alert: its sender, or any supervisor. */
  modify: (alert) => session.role === 'supervisor' || (session.role === 'officer' && alert.officer === session.username),
};

export function signIn({ username, role }) {
  session.username = username;
  session.role = role;
}
