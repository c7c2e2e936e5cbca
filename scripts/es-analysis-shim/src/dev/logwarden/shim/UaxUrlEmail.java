package dev.logwarden.shim;
import org.apache.lucene.analysis.Tokenizer;
import org.apache.lucene.analysis.email.UAX29URLEmailTokenizer;
import org.elasticsearch.plugin.NamedComponent;
import org.elasticsearch.plugin.analysis.TokenizerFactory;
@NamedComponent("uax_url_email")
public class UaxUrlEmail implements TokenizerFactory {
    public Tokenizer create() { return new UAX29URLEmailTokenizer(); }
}
