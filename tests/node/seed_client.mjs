// The seed's "Client Integration Example" (../shared/seed/, CONTRACT.md "Socket.IO"), as
// written there; only the server address comes from HUB_URL instead of localhost:3000,
// and a localStorage stand-in holds HUB_TOKEN (node has no browser storage).
import io from 'socket.io-client';

globalThis.localStorage = { getItem: (key) => (key === 'accessToken' ? process.env.HUB_TOKEN : null) };
setTimeout(() => process.exit(0), Number(process.env.HUB_LIFETIME_MS || 30000));

// ---- the seed's code, unchanged ----
// Connect to WebSocket server
const socket = io(process.env.HUB_URL);

// Authenticate
socket.on('connect', () => {
  const token = localStorage.getItem('accessToken');
  socket.emit('authenticate', { token });
});

// Handle authentication success
socket.on('authenticated', (data) => {
  console.log('Authenticated:', data);
});

// Listen for new messages
socket.on('new_message', (data) => {
  console.log('New message:', data.message);
  // Update UI with new message
});

// Listen for unread count updates
socket.on('unread_count_update', (data) => {
  console.log('Unread counts:', data.unreadCounts);
  // Update badges in UI
});

// Listen for message status updates
socket.on('message_status_update', (data) => {
  console.log('Message status:', data.status);
  // Update message status in UI
});
