export { startAzurite, AZURITE_ACCOUNT, AZURITE_KEY, type AzuriteInstance } from "../../src/demo/azurite.js";
