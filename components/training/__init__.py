"""The user module contract shared by transform, train and evaluate: loading the module, TFX's FnArgs, and
AutoGraph's rules for the TFX libraries.
"""
