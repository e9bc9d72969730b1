import { expect, test } from "vitest";
import net from "node:net";
import { DefaultAzureCredential } from "@azure/identity";

test("the test guard refuses connections that would leave 127.0.0.1", async () => {
  const socket = net.connect({ host: "169.254.169.254", port: 80 });
  const error = await new Promise<Error>((resolve) => socket.once("error", resolve));
  expect(error.message).toMatch(/only 127\.0\.0\.1 is allowed/);
});

test("loopback connections pass the guard", async () => {
  const server = net.createServer((s) => s.end());
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as net.AddressInfo).port;
  const socket = net.connect({ host: "127.0.0.1", port });
  await new Promise<void>((resolve, reject) => socket.once("connect", resolve).once("error", reject));
  socket.destroy();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

test("DefaultAzureCredential under the tests' AZURE_TOKEN_CREDENTIALS fails fast without touching the network", async () => {
  expect(process.env.AZURE_TOKEN_CREDENTIALS).toBe("EnvironmentCredential");
  const started = Date.now();
  await expect(
    new DefaultAzureCredential().getToken("https://management.azure.com/.default"),
  ).rejects.toThrow();
  expect(Date.now() - started).toBeLessThan(5_000);
});
