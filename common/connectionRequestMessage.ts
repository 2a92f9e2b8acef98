// The `connection_request` message (gui-protocol.md, "Service -> client messages"): field
// names, JSON types and order exactly as the Python tray reads them. Written by the service's
// prompt broker, read by `bastion prompt`. One definition for both ends.
export type ConnectionRequestMessage = {
  type: 'connection_request';
  request_id: string;
  app_name: string;
  app_path: string;
  app_category: string;
  dest_ip: string;
  dest_port: number;
  protocol: string;
  learning_mode: boolean;
};
